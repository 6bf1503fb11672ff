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


def skin_campaign(marketer, **fields):
    audience = Audience.objects.create(name="All", rules={"match": "all", "rules": []}, created_by=marketer)
    campaign = Campaign.objects.create(name="Skin", audience=audience, created_by=marketer, **fields)
    return campaign


def generated(campaign, by):
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=by))
    batch_generate(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.GENERATED, batch.error
    return batch


@pytest.mark.django_db
class TestIncrementalValue:
    def test_with_no_lift_nothing_pays_and_only_where_it_pays_leaves_everyone_out(self, trained, marketer):
        # given a 15%-off offer that changes nobody's behaviour: every discount is on a purchase made anyway
        campaign = skin_campaign(marketer, only_where_it_pays=True, holdout_percent=20)
        campaign.promotions.add(promotion(expected_lift=0))
        # when
        batch = generated(campaign, marketer)
        # then nobody is mailed, the holdout included, and the reason says why
        reasons = set(batch.recipients.values_list("reason", flat=True))
        assert reasons == {Recipient.Reason.NOT_PAYING}
        assert batch.summary["lifts"][str(campaign.promotions.get().id)]["source"] == "stated on the promotion"

    def test_the_incremental_profit_of_each_recipient_follows_the_formula(self, trained, marketer, client, approver):
        # given a lift of 200% stated on the promotion (price 19.90, cost 8.00, 15% off)
        campaign = skin_campaign(marketer)
        campaign.promotions.add(promotion(expected_lift=2))
        batch = generated(campaign, marketer)
        rows = list(batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT, p_response__gt=0))
        assert rows
        for row in rows:
            p0, p1 = row.p_baseline, row.p_response
            assert p1 == pytest.approx(min(3 * p0, 1.0))
            margin, discount = float(row.expected_margin) / p1, float(row.expected_discount) / p1
            assert (margin, discount) == (pytest.approx(11.90, abs=1e-3), pytest.approx(2.985, abs=1e-3))
            assert float(row.expected_value) == pytest.approx(p1 * (margin - discount) - p0 * margin, abs=1e-3)
            if p0 > 0.99:  # a certain buyer: no lift is possible, the discount is all the offer does
                assert float(row.expected_value) == pytest.approx(-2.985, abs=1e-3)
        # and the review page states the intervals and the lift as an assumption
        intervals = batch.summary["intervals"]
        low, high = intervals["redemptions"][1:]
        assert low <= batch.summary["expected"]["redemptions"] <= high
        client.force_login(approver)
        page = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk])).content.decode()
        assert 'id="incremental-profit"' in page and "90%:" in page
        assert "<b>assumption</b>: stated on the promotion" in page

    def test_a_lift_measured_on_earlier_batches_replaces_the_stated_one(self, trained, marketer):
        from campaigns.lift import campaign_lift
        from campaigns.models import BatchUplift

        campaign = skin_campaign(marketer)
        offer = promotion(expected_lift=0.5)
        campaign.promotions.add(offer)
        earlier = generated(campaign, marketer)
        sums = {"revenue": 0, "revenue_sq": 0, "profit": 0, "profit_sq": 0}
        BatchUplift.objects.create(
            batch=earlier,
            response="eligible_purchase",
            window_start=timezone.now(),
            window_end=timezone.now(),
            groups={
                "treated": {"n": 1000, "responders": 300, **sums},
                "holdout": {"n": 200, "responders": 50, **sums},
            },
        )
        lift = campaign_lift(campaign_id=campaign.id, promotion=offer)
        # 30% of treated against 25% of the holdout: 20% more responses with the offer
        assert (lift.source, lift.relative) == ("earlier batches", pytest.approx(0.2))
        # too few responders in the holdout: the promotion's stated lift stays
        BatchUplift.objects.filter(batch=earlier).update(
            groups={"treated": {"n": 100, "responders": 30, **sums}, "holdout": {"n": 20, "responders": 5, **sums}}
        )
        assert campaign_lift(campaign_id=campaign.id, promotion=offer).relative == pytest.approx(0.5)


@pytest.mark.django_db
def test_after_the_send_the_page_sets_predicted_buyers_against_actual(trained, marketer, client, approver):
    from campaigns.services.predictions import batch_predicted_vs_actual

    # given a batch sent 30 days ago (inside the shop's history), with a holdout
    campaign = skin_campaign(marketer, holdout_percent=25)
    campaign.promotions.add(promotion())
    batch = generated(campaign, marketer)
    sent = timezone.now() - timedelta(days=30)
    Batch.objects.filter(pk=batch.pk).update(send_started_at=sent)
    batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).update(send_status=Recipient.SendStatus.SENT)
    batch.refresh_from_db()
    # when
    kept = batch_predicted_vs_actual(batch=batch)
    # then the actual buyers are those with a skin-care purchase in [sent, sent + 14 days), counted here again
    window = {"occurred_at__gte": sent, "occurred_at__lt": sent + timedelta(days=14)}
    skin = Event.objects.filter(type="purchase", item__category_path="Beauty > Skin care", **window)
    sent_to = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).values("customer_id")
    held = batch.recipients.filter(reason=Recipient.Reason.HOLDOUT).values("customer_id")
    assert kept["recipients"].actual == skin.filter(customer_id__in=sent_to).values("customer").distinct().count()
    assert kept["holdout"].actual == skin.filter(customer_id__in=held).values("customer").distinct().count()
    assert kept["recipients"].actual > 0 and kept["holdout"].n > 0
    assert kept["recipients"].predicted == pytest.approx(
        sum(batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).values_list("p_response", flat=True))
    )
    assert kept["complete"]
    client.force_login(approver)
    page = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk])).content.decode()
    assert 'id="predicted-actual"' in page


@pytest.mark.django_db
def test_in_the_demo_predicted_against_actual_reads_the_demos_window(trained, marketer, client, approver, settings):
    from campaigns.services.predictions import batch_predicted_vs_actual
    from promo_site.demo import POSTMARK_BACKEND

    # given demo mode at a day per minute, and a batch sent a minute ago
    settings.DEMO_MODE, settings.DEMO_TIME_SCALE, settings.EMAIL_BACKEND = True, 1440, POSTMARK_BACKEND
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:8025/"}
    campaign = skin_campaign(marketer, holdout_percent=25)
    campaign.promotions.add(promotion())
    batch = generated(campaign, marketer)
    sent = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    Batch.objects.filter(pk=batch.pk).update(send_started_at=sent)
    batch.refresh_from_db()
    # when
    kept = batch_predicted_vs_actual(batch=batch)
    # then the window is the measurement's, 14 minutes, still open; the page gives its times, not two days apart
    assert (kept["window_start"], kept["window_end"], kept["complete"]) == (sent, sent + timedelta(minutes=14), False)
    client.force_login(approver)
    page = client.get(reverse("admin:campaigns_batch_change", args=[batch.pk])).content.decode()
    end = sent + timedelta(minutes=14)
    assert f"from {sent:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: <b>window still open (" in page
    assert " minutes left)</b>" in page and "days left" not in page
