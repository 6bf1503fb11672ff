"""The marketer's walk in embedded mode (SQLite, no Redis), through the Django test client.

It runs on SQLite only: tests/promo_site/test_embedded_mode.py starts it in a subprocess with the embedded
settings (a SQLite database, no Redis, a SQLite-backed broker), so it runs in every CI run. The work a
Celery worker would do is done here by running what the outbox queued, in this process.
"""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns import links
from campaigns.models import Audience, Batch, BatchDailyStats, Campaign, Recipient
from promo_site.models import OutboxTask
from promo_site.outbox import _task
from tests.admin_forms import admin_form
from tests.campaigns.conftest import promotion

pytestmark = pytest.mark.django_db
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture(autouse=True)
def _sqlite_only(settings):
    if connection.vendor != "sqlite" or not settings.EMBEDDED_MODE:
        pytest.skip("the embedded walk runs on SQLite: tests/promo_site/test_embedded_mode.py starts it")


def run_outbox():
    """Run every task the outbox holds, as a worker would, until none is left; returns their names."""
    ran = []
    while row := OutboxTask.objects.filter(dispatched_at__isnull=True).order_by("id").first():
        OutboxTask.objects.filter(id=row.id).update(dispatched_at=timezone.now())
        _task(row.task)(*row.args, **row.kwargs)
        ran.append(row.task)
    return ran


def test_a_campaign_goes_from_creation_to_the_dashboard(client, shop, active_model, marketer, approver, api):
    # given: a marketer creates a campaign through its admin form
    offer = promotion()
    audience = Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=marketer)
    client.force_login(marketer)
    add = reverse("admin:campaigns_campaign_add")
    form = admin_form(client.get(add).content.decode(), "campaign_form")
    form.update(name=["Embedded"], audience=[str(audience.id)], promotions=[str(offer.id)], holdout_percent=["20"])
    response = client.post(add, form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    campaign = Campaign.objects.get(name="Embedded")

    # when it is generated, approved by another user and sent
    client.post(reverse("admin:campaigns_campaign_generate", args=[campaign.pk]))
    batch = Batch.objects.get(campaign=campaign)
    ran = run_outbox()  # the generation, and the chunk tasks it queued for other workers (none left to do)
    assert ran[0] == "campaigns.tasks.generate_batch"
    assert set(ran[1:]) <= {"campaigns.tasks.generate_batch_chunk"}
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.GENERATED
    client.force_login(approver)
    client.post(reverse("admin:campaigns_batch_decide", args=[batch.pk]), {"decision": "approve", "comment": "ok"})
    assert Batch.objects.get(pk=batch.pk).status == Batch.Status.APPROVED
    client.force_login(marketer)
    client.post(reverse("admin:campaigns_batch_send", args=[batch.pk]))
    ran = run_outbox()
    batch.refresh_from_db()
    assert batch.status == Batch.Status.SENT
    # the finish of the send queued the dashboard's refresh: no "no sent batch yet" about a sent batch
    assert ran[-1] == "campaigns.tasks.stats_refresh"
    sent = batch.recipients.filter(send_status=Recipient.SendStatus.SENT)
    assert sent.count() == batch.summary["recipients"] > 0

    # and a customer clicks an item of their message, then buys it through the shop's API
    message = sent.order_by("id").first()
    item_id = message.items[0]["item_id"]
    link = reverse("campaigns:click", args=[links.click_token(message.id, item_id)])
    assert client.get(link, headers={"user-agent": BROWSER}).status_code == 302
    item = next(i for i in shop["items"] if i.id == item_id)
    bought = {
        "customer": message.customer.external_id, "item": item.external_id, "type": "purchase",
        "value": str(item.price), "occurred_at": (timezone.now() + timedelta(minutes=1)).isoformat(),
        "event_id": "embedded-walk-1",
    }  # fmt: skip
    assert api.post("/api/v1/events/", {"source": "web", "events": [bought]}, format="json").status_code in (200, 201)
    run_outbox()
    from campaigns.tasks import stats_refresh

    stats_refresh(batch_ids=[batch.id])

    # then the dashboard and its export answer, with the walk's numbers on today's date
    today = timezone.now().date()
    assert set(BatchDailyStats.objects.filter(batch=batch).values_list("day", flat=True)) == {today}
    page = client.get("/")
    assert page.status_code == 200
    row = page.context["batch_rows"][0]
    n_sent = sent.count()
    assert {k: row.totals[k] for k in ("targeted", "sent", "clicked", "converted", "conversions")} == {
        "targeted": n_sent, "sent": n_sent, "clicked": 1, "converted": 1, "conversions": 1,
    }  # fmt: skip
    assert Decimal(row.totals["revenue"]) == Decimal(item.price)
    assert page.context["charts"]["daily"]["day"] == [today.isoformat()]
    export = client.get("/dashboard.csv")
    assert export.status_code == 200
    lines = list(csv.DictReader(io.StringIO(export.content.decode())))
    assert [(line["level"], line["sent"], line["converted"]) for line in lines] == [
        ("campaign", str(n_sent), "1"),
        ("batch", str(n_sent), "1"),
    ]
