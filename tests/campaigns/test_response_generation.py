"""The response model in use: it trains with a model version, a batch records it and takes p(response) from
it, and the review page says which source p(response) came from (the proxy when there is no model)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Audience, Batch, Campaign, Recipient
from campaigns.services.batches import batch_request
from campaigns.services.generation import batch_generate
from recommender.models import ModelVersion
from recommender.response import ARTIFACT
from recommender.services import artifact_dir, modelversion_activate, modelversion_train
from shop.models import Event
from tests.campaigns.conftest import CATEGORIES, promotion
from tests.factories import CustomerFactory, ItemFactory

DAYS = 150


def build_regular_shop():
    """80 customers over 150 days: the even ones buy skin care every 4 days, the odd ones kitchen items
    every 6 days and skin care every 45 days."""
    items = [ItemFactory(external_id=f"sku-{i}", category_path=CATEGORIES[i % 3]) for i in range(24)]
    skin = [item for item in items if item.category_path == "Beauty > Skin care"]
    kitchen = [item for item in items if item.category_path == "Home > Kitchen"]
    start = timezone.now() - timedelta(days=DAYS)
    events = []
    for c in range(80):
        customer = CustomerFactory(external_id=f"r{c:02d}")
        plan = [(4, skin)] if c % 2 == 0 else [(6, kitchen), (45, skin)]
        for every, bought in plan:
            for n, day in enumerate(range(c % every, DAYS, every)):
                item = bought[(c + n) % len(bought)]
                events.append(
                    Event(
                        customer=customer,
                        item=item,
                        type="purchase",
                        value=item.price,
                        occurred_at=start + timedelta(days=day, hours=10),
                        source="test",
                        client_event_id=f"{c}-{every}-{day}",
                    )
                )
    Event.objects.bulk_create(events)


@pytest.fixture
def trained(db, settings, tmp_path, admin_user):
    settings.MEDIA_ROOT = tmp_path
    build_regular_shop()
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    return modelversion_activate(version=version, by=admin_user)


@pytest.mark.django_db
class TestResponseModelInUse:
    def test_it_trains_with_the_model_version_beside_its_artifacts(self, trained):
        report = trained.metrics["response"]
        assert "skipped" not in report, report
        assert (artifact_dir(trained) / ARTIFACT).exists()
        assert max(report["train_cutoffs"]) + report["days"] <= report["calibration_cutoff"]
        assert 0 < report["calibration_rate"] < 1

    def test_a_batch_records_it_and_takes_p_response_from_it(self, trained, marketer, client, approver):
        # given a campaign offering skin care to everyone
        audience = Audience.objects.create(name="All", rules={"match": "all", "rules": []}, created_by=marketer)
        campaign = Campaign.objects.create(name="Skin", audience=audience, created_by=marketer)
        campaign.promotions.add(promotion())
        # when a batch is generated
        batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        batch_generate(batch_id=batch.id)
        batch.refresh_from_db()
        # then it used the version's response model, and regular skin-care buyers are far likelier to respond
        assert batch.status == Batch.Status.GENERATED, batch.error
        assert batch.response_model == trained and batch.summary["response_model"] == trained.id
        rows = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).select_related("customer")
        regular = [r.p_response for r in rows if int(r.customer.external_id[1:]) % 2 == 0]
        rare = [r.p_response for r in rows if int(r.customer.external_id[1:]) % 2 == 1]
        assert regular and rare
        # (the model knows the rhythm: a rare buyer due within the window is likely too, the others are not)
        assert sum(regular) / len(regular) > 0.8 > 0.5 > sum(rare) / len(rare)
        assert min(rare) < 0.1
        # and the review page names the source and shows each probability as a percentage
        client.force_login(approver)
        page = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk])).content.decode()
        assert f"trained with model version #{trained.id}" in page
        assert rows[0].p_response_percent in page

    def test_without_a_response_model_the_proxy_is_used_and_the_page_says_so(
        self, campaign, active_model, marketer, client, approver
    ):
        # the conftest shop has 40 days of history: too little for the response model
        assert "skipped" in active_model.metrics["response"]
        batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        batch_generate(batch_id=batch.id)
        batch.refresh_from_db()
        assert batch.response_model is None and batch.summary["response_model"] is None
        client.force_login(approver)
        page = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk])).content.decode()
        assert "No response model was trained" in page
