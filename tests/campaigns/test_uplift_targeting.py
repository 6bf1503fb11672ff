"""Uplift targeting: training on past batches with holdouts, the generation hook, the global holdout."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.batch_settings import BatchSettings
from campaigns.eligibility import Eligibility, hashed_draw
from campaigns.models import Batch, Campaign, Recipient, UpliftModel
from campaigns.services.batches import batch_request
from campaigns.services.generation import batch_generate
from campaigns.services.uplift_targeting import customer_features, feature_names, uplift_model_train
from shop.models import Customer, Event
from tests.factories import BatchFactory, CustomerFactory, RecipientFactory, UserFactory

pytestmark = pytest.mark.django_db
Reason = Recipient.Reason


def past_batch(campaign, n=600, seed=0):
    """A batch sent 30 days ago: half treated, half holdout; the message works on the old, not the young."""
    rng = np.random.default_rng(seed)
    sent = timezone.now() - timedelta(days=30)
    batch = BatchFactory(campaign=campaign, number=1, sent_at=sent)
    events = []
    for c in range(n):
        age = 20 + c % 50
        customer = CustomerFactory(external_id=f"h{c}", demographics={"age": age, "region": "north"})
        treated = c % 2 == 0
        RecipientFactory(batch=batch, customer=customer, holdout=not treated)
        rate = 0.1 + (0.6 if treated and age >= 45 else 0.0)
        if rng.random() < rate:
            events.append(
                Event(customer=customer, type="purchase", value=10, occurred_at=sent + timedelta(days=2),
                      source="t", client_event_id=f"{c}")
            )  # fmt: skip
    Event.objects.bulk_create(events)
    return batch


@pytest.fixture
def uplift_model(campaign, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    # any purchase: past_batch's customers buy no item in particular
    Campaign.objects.filter(id=campaign.id).update(measured_response=Campaign.Response.PURCHASE)
    past_batch(campaign)
    return uplift_model_train(model_id=UpliftModel.objects.create().id)


def test_without_a_past_batch_with_a_holdout_it_says_there_is_not_enough_history(db):
    model = uplift_model_train(model_id=UpliftModel.objects.create().id)
    assert model.status == UpliftModel.Status.FAILED
    assert model.error.startswith("Not enough history to train the uplift model")
    with pytest.raises(CommandError, match="Not enough history"):
        call_command("train_uplift", "--now")


def test_a_batch_whose_window_is_still_open_is_not_learnt_from(campaign):
    batch = past_batch(campaign, n=10)
    Batch.objects.filter(id=batch.id).update(sent_at=timezone.now() - timedelta(days=2))
    assert uplift_model_train(model_id=UpliftModel.objects.create().id).status == UpliftModel.Status.FAILED


def test_it_learns_who_responds_because_of_the_message(uplift_model):
    assert uplift_model.status == UpliftModel.Status.READY, uplift_model.error
    assert (uplift_model.n_treated, uplift_model.n_control) == (300, 300)
    assert uplift_model.chosen in uplift_model.scores
    assert "demo:age" in uplift_model.features and "demo:region" not in uplift_model.features


def test_features_describe_the_history_before_the_send(db):
    customer = CustomerFactory(demographics={"age": 40})
    at = timezone.now()
    for days, value in ((3, 10), (40, 30), (400, 99)):
        Event.objects.create(customer=customer, type="purchase", value=value, occurred_at=at - timedelta(days=days),
                             source="t", client_event_id=f"f{days}")  # fmt: skip
    Event.objects.create(customer=customer, type="purchase", value=5, occurred_at=at, source="t", client_event_id="now")
    spec = {"categories": [], "demographics": ["age"]}
    row = dict(zip(feature_names(spec), customer_features([customer.id], at, spec)[0]))
    assert row["recency_days"] == pytest.approx(3)
    assert (row["purchases_365"], row["spend_365"], row["purchases_90"], row["mean_value_365"]) == (2, 40, 2, 20)
    assert row["demo:age"] == 40


def test_an_uplift_campaign_keeps_the_share_with_the_highest_predicted_uplift(uplift_model, campaign):
    # given the campaign targets the top 50% of its audience (everyone) by predicted uplift
    campaign.targeting, campaign.target_percent = Campaign.Targeting.UPLIFT, 50
    targeting = Eligibility(Batch(campaign=campaign, seed=0, settings_snapshot=_frozen(campaign)))
    customers = list(Customer.objects.filter(external_id__startswith="h").values_list("id", "demographics"))
    # when / then: the old, on whom the message works, are kept; the young are left out for low uplift
    kept_ages = [d["age"] for c, d in customers if targeting.targeting_exclusion(c) == ""]
    left_ages = [d["age"] for c, d in customers if targeting.targeting_exclusion(c) == Reason.LOW_UPLIFT]
    assert np.mean(kept_ages) > np.mean(left_ages) + 10
    total = Customer.objects.count()
    assert len(targeting.kept()) == int(np.ceil(total / 2))


def _frozen(campaign):
    return BatchSettings.of_campaign(campaign).to_json()


def test_generation_leaves_out_low_uplift_customers_before_the_holdout_draw(
    uplift_model, campaign, active_model, marketer
):
    Campaign.objects.filter(id=campaign.id).update(targeting="uplift", target_percent=20)
    batch = Batch.objects.get(pk=batch_request(campaign=Campaign.objects.get(id=campaign.id), by=marketer))
    batch_generate(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.GENERATED, batch.error
    reasons = dict(batch.recipients.values_list("customer_id", "reason"))
    kept = Eligibility(batch).kept()
    assert {c for c, r in reasons.items() if r == Reason.LOW_UPLIFT} == set(reasons) - kept - {
        c for c, r in reasons.items() if r in (Reason.NO_CONSENT, Reason.UNSUBSCRIBED, Reason.SUPPRESSED)
    }


def test_an_uplift_campaign_without_a_model_fails_with_the_reason(campaign, active_model, marketer):
    Campaign.objects.filter(id=campaign.id).update(targeting="uplift", target_percent=50)
    batch = Batch.objects.get(pk=batch_request(campaign=Campaign.objects.get(id=campaign.id), by=marketer))
    batch_generate(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.FAILED
    assert "needs a trained uplift model" in batch.error


def test_the_global_holdout_keeps_the_same_customers_out_of_every_batch(campaign, active_model, marketer, settings):
    # given 30% of all customers in the global holdout
    settings.GLOBAL_HOLDOUT_PERCENT = 30
    # when two batches are generated
    batches = []
    for _ in range(2):
        batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        batch_generate(batch_id=batch.id)
        batches.append(batch)
    # then the same reachable customers, those whose draw is under 0.3, are out of both, for that reason
    held = [
        set(b.recipients.filter(reason=Reason.GLOBAL_HOLDOUT).values_list("customer_id", flat=True)) for b in batches
    ]
    assert held[0] == held[1] and held[0]
    reachable = Customer.objects.contactable().values_list("id", flat=True)
    assert held[0] == {c for c in reachable if hashed_draw(settings.GLOBAL_HOLDOUT_SEED, c) < 0.3}
    assert not batches[0].recipients.filter(customer_id__in=held[0], outcome="recipient").exists()


def test_a_marketer_queues_a_training_from_the_admin_and_an_analyst_cannot(client, marketer, roles):
    client.force_login(marketer)
    page = client.get("/admin/campaigns/upliftmodel/").content.decode()
    assert "Train the uplift model" in page
    response = client.post("/admin/campaigns/upliftmodel/train/")
    assert response.status_code == 302
    queued = UpliftModel.objects.get()
    assert (queued.status, queued.created_by) == (UpliftModel.Status.QUEUED, marketer)
    analyst = UserFactory(username="analyst")
    analyst.groups.add(roles["analyst"])
    client.force_login(analyst)
    assert "Train the uplift model" not in client.get("/admin/campaigns/upliftmodel/").content.decode()
    assert client.post("/admin/campaigns/upliftmodel/train/").status_code == 403
    assert UpliftModel.objects.count() == 1
