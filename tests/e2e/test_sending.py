"""A marketer sends an approved batch from its page and watches the live progress, in a real browser,
with a real Celery worker sending to the fake Postmark."""

from collections import Counter

import pytest
from playwright.sync_api import expect

from campaigns.models import Audience, Batch, Campaign, Recipient
from campaigns.services.batches import batch_approve, batch_request
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from tests.campaigns.conftest import build_shop, promotion
from tests.conftest import ARTIFACTS, wait_for
from tests.e2e.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def approved_batch(celery_worker, fake_postmark, settings, roles, marketer, approver):
    settings.MEDIA_ROOT = celery_worker.media_root  # the worker generates the batch with this model
    fake_postmark.reset()
    build_shop(300)
    admin = UserFactory(username="admin", is_superuser=True)
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    modelversion_activate(version=version, by=admin)
    audience = Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=marketer)
    campaign = Campaign.objects.create(name="Spring", audience=audience, created_by=marketer, holdout_percent=20)
    campaign.promotions.add(promotion())
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))

    def generated():
        return Batch.objects.get(pk=batch.pk).status == Batch.Status.GENERATED

    wait_for(generated, timeout=120)
    return batch_approve(batch=Batch.objects.get(pk=batch.pk), by=approver)


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"sending-{name}.png"), full_page=True)


def test_the_marketer_sends_the_batch_and_watches_it_go_out(page, live_server, approved_batch, fake_postmark):
    rows = list(approved_batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).select_related("customer"))
    bounced = rows[7].customer.email
    fake_postmark.configure(invalid=[bounced])
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/campaigns/batch/{approved_batch.pk}/change/")
    expect(page.locator("#send-batch")).to_have_text(f"Send to {len(rows)} recipients")

    # the marketer sends it, confirming, and the page follows the worker
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#send-batch")
    expect(page.locator(".messagelist .success")).to_contain_text("Sending has started.")
    expect(page.locator("#pause-sending")).to_be_visible()
    shot(page, "in-progress")
    expect(page.locator("#batch-status")).to_have_text("Sent", timeout=120_000)

    # the progress reaches everyone: all sent but the address Postmark refused, listed with its reason
    expect(page.locator("#s-sent")).to_have_text(f"{len(rows) - 1}")
    expect(page.locator("#s-failed")).to_have_text("1")
    expect(page.locator("#s-remaining")).to_have_text("0")
    expect(page.locator("#s-failures")).to_contain_text(f"Invalid 'To' address: '{bounced}'.")
    expect(page.locator("#audit-log .audit-sent")).to_contain_text(f"{len(rows) - 1} sent, 1 failed")
    expect(page.locator("#pause-sending")).to_have_count(0)
    shot(page, "sent")
    keys = Counter(int(record["Metadata"]["promo_message"]) for record in fake_postmark.outbox)
    assert keys == {row.id: 1 for row in rows if row.customer.email != bounced}

    # the failed list is the recipients list, filtered
    page.click("#s-failed-link")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    expect(page.locator("#result_list")).to_contain_text(rows[7].customer.name)
