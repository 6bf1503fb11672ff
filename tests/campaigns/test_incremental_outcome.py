"""The measured response "a purchase of the promotion's eligible items": the holdout comparison and the
uplift model's labels count it; the lift source hierarchy (uplift model, earlier batches, stated); predicted
against actual after the send, with the window still open said as such."""

import csv
import io
import math
from datetime import timedelta

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.lift import EARLIER, MIN_MODEL_RESPONDERS, MODEL, STATED, campaign_lift, campaign_lifts
from campaigns.models import Batch, BatchUplift, Campaign, Recipient, UpliftModel
from campaigns.services.batches import batch_request
from campaigns.services.generation import batch_generate
from campaigns.services.predictions import batch_predicted_vs_actual, window_left
from campaigns.services.stats import batch_uplift_rebuild, stats_refresh
from campaigns.services.uplift_stats import group_promise
from campaigns.services.uplift_targeting import _batch_rows, uplift_model_train, uplift_predict
from shop.models import Event
from tests.campaigns.conftest import promotion
from tests.factories import (
    BatchFactory,
    CampaignFactory,
    CustomerFactory,
    EventFactory,
    ItemFactory,
    RecipientFactory,
)

pytestmark = pytest.mark.django_db
ELIGIBLE = Campaign.Response.ELIGIBLE_PURCHASE


def test_a_new_campaign_measures_the_purchase_of_its_promotions_items(campaign):
    assert Campaign._meta.get_field("measured_response").default == ELIGIBLE
    assert campaign.measured_response == ELIGIBLE


def eligible_batch(sent, treated=2, p1=0.5):
    """`treated` treated and three held-out customers of a skin-care offer; p1 each, p0 = 0.25 each."""
    offer = promotion()
    campaign = CampaignFactory(measured_response=ELIGIBLE, promotions=[offer])
    sent_to, held = [CustomerFactory() for _ in range(treated)], [CustomerFactory() for _ in range(3)]
    batch = BatchFactory(
        campaign=campaign, sent_at=sent, recipients=sent_to, holdout=held,
        recipients__promotion=offer, recipients__p_response=p1, recipients__p_baseline=0.25,
        holdout__promotion=offer, holdout__p_response=p1, holdout__p_baseline=0.25,
    )  # fmt: skip
    return batch, (*sent_to, *held)


def test_a_holdout_customer_who_buys_an_eligible_item_responds_one_who_buys_other_items_does_not(db):
    sent = timezone.now() - timedelta(days=20)
    batch, (t1, t2, h1, h2, h3) = eligible_batch(sent)
    skin = ItemFactory(category_path="Beauty > Skin care > Creams", price="10.00")
    kitchen = ItemFactory(category_path="Home > Kitchen", price="10.00")
    # t1 and h1 buy skin care in the window; t2 and h2 only kitchen items; h3 buys skin care after the window
    EventFactory(customer=t1, item=skin, value="10.00", occurred_at=sent + timedelta(days=1))
    EventFactory(customer=t2, item=kitchen, value="10.00", occurred_at=sent + timedelta(days=1))
    EventFactory(customer=h1, item=skin, value="10.00", occurred_at=sent + timedelta(days=13))
    EventFactory(customer=h2, item=kitchen, value="10.00", occurred_at=sent + timedelta(days=2))
    EventFactory(customer=h3, item=skin, value="10.00", occurred_at=sent + timedelta(days=14))
    # when
    uplift = batch_uplift_rebuild(batch=batch)
    groups = uplift.groups
    # then one responder in each group, though everyone in the window bought something (revenue 20 and 20)
    assert uplift.response == ELIGIBLE
    assert (groups["treated"]["responders"], groups["treated"]["buyers"], groups["treated"]["revenue"]) == (1, 1, 20)
    assert (groups["holdout"]["responders"], groups["holdout"]["buyers"], groups["holdout"]["revenue"]) == (1, 1, 20)
    # the predictions: Σ p1 = 2 x 0.5 for the treated, Σ p0 = 3 x 0.25 for the held out, and Σ p (1 - p)
    assert (groups["treated"]["predicted"], groups["treated"]["predicted_var"]) == (1.0, 0.5)
    assert (groups["holdout"]["predicted"], groups["holdout"]["predicted_var"]) == (0.75, 3 * 0.1875)
    # its 90% interval: 1 ± 1.645 x sqrt(0.5) = [-0.16, 2.16], outwards to whole customers and within [0, 2]
    promise = group_promise(groups["treated"])
    assert (promise.n, promise.low, promise.high, promise.actual) == (2, 0, 2, 1)
    assert promise.low == max(0, math.floor(1 - 1.6449 * math.sqrt(0.5)))
    # the uplift model learns the same outcome: y = [t1, t2, h1, h2, h3] bought skin care in the window
    ids, treatment, y = _batch_rows(batch, sent)
    assert ids == [c.id for c in (t1, t2, h1, h2, h3)]
    assert treatment.tolist() == [1, 1, 0, 0, 0] and y.tolist() == [1, 0, 1, 0, 0]
    # and the batch page's predicted against actual counts them the same way
    kept = batch_predicted_vs_actual(batch=batch)
    assert (kept["recipients"].actual, kept["holdout"].actual, kept["holdout"].predicted) == (1, 1, 0.75)
    assert kept["complete"] and kept["left"] == ""


def test_any_purchase_still_counts_every_buyer_when_the_campaign_asks_for_it(db):
    # given the same batch measured on any purchase, where t2 bought only a kitchen item
    sent = timezone.now() - timedelta(days=20)
    batch, (t1, t2, *_rest) = eligible_batch(sent)
    Campaign.objects.filter(id=batch.campaign_id).update(measured_response=Campaign.Response.PURCHASE)
    batch.refresh_from_db()
    EventFactory(customer=t2, item=ItemFactory(category_path="Home > Kitchen"), occurred_at=sent + timedelta(days=1))
    groups = batch_uplift_rebuild(batch=batch).groups
    assert (groups["treated"]["responders"], groups["treated"]["buyers"]) == (1, 0)


def test_the_window_left_is_said_in_days_hours_or_minutes():
    now = timezone.now()
    assert window_left(now + timedelta(days=2, hours=3), now) == "3 days left"
    assert window_left(now + timedelta(hours=1), now) == "1 hour left"
    assert window_left(now + timedelta(minutes=14), now) == "14 minutes left"
    assert window_left(now, now) == "" and window_left(now - timedelta(days=1), now) == ""


# --- the lift source hierarchy ------------------------------------------------------------------------------


def measured(batch, response, treated, holdout):
    sums = {"revenue": 0, "revenue_sq": 0, "profit": 0, "profit_sq": 0}
    BatchUplift.objects.update_or_create(
        batch=batch,
        defaults={
            "response": response,
            "window_start": timezone.now(),
            "window_end": timezone.now(),
            "groups": {"treated": {**treated, **sums}, "holdout": {**holdout, **sums}},
        },
    )


def test_without_history_the_lift_is_the_one_stated_on_the_promotion(campaign):
    offer = promotion(expected_lift=0.25)
    lift = campaign_lift(campaign_id=campaign.id, promotion=offer)
    assert (lift.source, lift.relative) == (STATED, 0.25)
    assert lift.treated(0.4) == pytest.approx(0.5)
    assert "an assumption" in lift.detail and "no uplift model: none trained yet" in lift.detail


def test_earlier_batches_count_only_when_measured_on_the_purchase_of_the_promotions_items(campaign):
    offer = promotion(expected_lift=0.25)
    earlier = BatchFactory(campaign=campaign)
    # measured on any purchase: not the promotion's outcome, the stated lift stays
    measured(earlier, "purchase", {"n": 1000, "responders": 600}, {"n": 200, "responders": 100})
    assert campaign_lift(campaign_id=campaign.id, promotion=offer).source == STATED
    # on the eligible purchase: 30% against 25% is 20% more responses with the offer
    measured(earlier, ELIGIBLE, {"n": 1000, "responders": 300}, {"n": 200, "responders": 50})
    lift = campaign_lift(campaign_id=campaign.id, promotion=offer)
    assert (lift.source, lift.relative) == (EARLIER, pytest.approx(0.2))
    assert lift.treated(0.5) == pytest.approx(0.6)
    # a batch measured after the one being generated is not an earlier one
    assert campaign_lift(campaign_id=campaign.id, promotion=offer, before_batch_id=earlier.id).source == STATED


def eligible_past_batch(campaign, offer, n=600, seed=0):
    """A batch sent 30 days ago, half treated, half held out, all given `offer` (skin care): 40% buy skin care in
    the window without the message, and 50 points more of the treated aged 45 or more; everyone also buys a
    kitchen item (any purchase would show no difference)."""
    rng = np.random.default_rng(seed)
    sent = timezone.now() - timedelta(days=30)
    batch = BatchFactory(campaign=campaign, number=1, sent_at=sent)
    skin = ItemFactory(external_id="skin-past", category_path="Beauty > Skin care")
    kitchen = ItemFactory(external_id="kitchen-past", category_path="Home > Kitchen")
    events = []
    for c in range(n):
        age = 20 + c % 50
        customer = CustomerFactory(external_id=f"u{c}", demographics={"age": age})
        treated = (c // 50) % 2 == 0  # every age on both sides
        RecipientFactory(batch=batch, customer=customer, holdout=not treated, promotion=offer, p_baseline=0.4)
        bought = [kitchen]
        if rng.random() < 0.4 + (0.5 if treated and age >= 45 else 0.0):
            bought.append(skin)
        for k, item in enumerate(bought):
            events.append(
                Event(customer=customer, item=item, type="purchase", value=10, source="t", client_event_id=f"u{c}-{k}",
                      occurred_at=sent + timedelta(days=2))
            )  # fmt: skip
    Event.objects.bulk_create(events)
    return batch


@pytest.fixture
def eligible_model(campaign, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    offer = campaign.promotions.get()
    eligible_past_batch(campaign, offer)
    model = uplift_model_train(model_id=UpliftModel.objects.create().id)
    assert model.status == UpliftModel.Status.READY, model.error
    return model


def test_the_uplift_model_trained_on_the_eligible_purchase_comes_first(eligible_model, campaign):
    offer = campaign.promotions.get()
    # it learned from 300 treated and 300 held-out customers, over 100 responders in each group
    assert eligible_model.responses == [ELIGIBLE]
    assert min(eligible_model.responders_treated, eligible_model.responders_control) >= MIN_MODEL_RESPONDERS
    assert eligible_model.responders_treated > eligible_model.responders_control
    # and a lift measured on earlier batches gives way to it
    measured(BatchFactory(campaign=campaign, number=7), ELIGIBLE, {"n": 1000, "responders": 300},
             {"n": 200, "responders": 50})  # fmt: skip
    lifts = campaign_lifts(campaign_id=campaign.id, promotions=[offer])
    lift = lifts[offer.id]
    assert (lift.source, lift.relative, lift.model_id) == (MODEL, None, eligible_model.id)
    # each customer's p1 is p0 plus their own predicted uplift: larger for the old than for the young
    old, young = (Recipient.objects.get(customer__external_id=e).customer_id for e in ("u30", "u2"))
    lift.prepare([old, young])
    uplift = uplift_predict([old, young])
    assert lift.treated(0.2, old) == pytest.approx(np.clip(0.2 + uplift[0], 0, 1))
    assert lift.treated(0.2, young) == pytest.approx(np.clip(0.2 + uplift[1], 0, 1))
    assert uplift[0] > uplift[1] + 0.2
    # too few responders on one side: the earlier batches' measured lift instead
    UpliftModel.objects.filter(id=eligible_model.id).update(responders_control=MIN_MODEL_RESPONDERS - 1)
    lift = campaign_lift(campaign_id=campaign.id, promotion=offer)
    assert lift.source == EARLIER and f"99 held-out buyers of the items, under {MIN_MODEL_RESPONDERS}" in lift.detail
    # a model that learned another outcome (any purchase) is no source of lift either
    UpliftModel.objects.filter(id=eligible_model.id).update(responders_control=300, responses=["purchase"])
    assert campaign_lift(campaign_id=campaign.id, promotion=offer).source == EARLIER


def test_an_unreadable_model_file_falls_back_to_the_next_source(eligible_model, campaign, settings):
    (settings.MEDIA_ROOT / eligible_model.artifact).unlink()
    from campaigns.services import uplift_targeting

    uplift_targeting._loaded.clear()
    lift = campaign_lift(campaign_id=campaign.id, promotion=campaign.promotions.get())
    assert lift.source == STATED and "no uplift model: its file cannot be read" in lift.detail


def test_a_batch_generated_with_the_uplift_model_says_so_and_adds_each_customers_uplift(
    eligible_model, campaign, active_model, marketer, settings
):
    # given a global holdout too
    settings.GLOBAL_HOLDOUT_PERCENT = 20
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
    batch_generate(batch_id=batch.id)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.GENERATED, batch.error
    (lift,) = batch.summary["lifts"].values()
    assert (lift["source"], lift["relative"], lift["model"]) == (MODEL, None, eligible_model.id)
    rows = list(batch.recipients.filter(promotion__isnull=False).values_list("customer_id", "p_baseline", "p_response"))
    uplift = uplift_predict([c for c, _, _ in rows], at=None)
    # p1 - p0 is the model's uplift at the shop's clock (features of the same customers: within rounding)
    assert len(rows) > 10
    assert np.allclose([p1 for *_, p1 in rows], np.clip([p0 for _, p0, _ in rows] + uplift, 0, 1), atol=1e-6)
    # every held-out customer, the global holdout included, has the promotion they would have had, unsent
    for reason in (Recipient.Reason.HOLDOUT, Recipient.Reason.GLOBAL_HOLDOUT):
        held = batch.recipients.filter(reason=reason)
        assert held.exists() and not held.filter(promotion__isnull=True).exists()
        assert not held.exclude(code="").exists() and not held.filter(outcome=Recipient.Outcome.RECIPIENT).exists()


# --- predicted against actual on the dashboard --------------------------------------------------------------


def test_the_dashboard_sets_predicted_against_actual_and_says_when_the_window_is_still_open(client, analyst):
    # given a batch sent two days ago, whose one treated buyer so far is under the predicted interval's low
    # end: 10 treated at p1 = 0.9, 9 ± 1.645 x sqrt(0.9) = [7.4, 10.6], so [7, 10]
    sent = timezone.now() - timedelta(days=2)
    batch, (t1, *_rest) = eligible_batch(sent, treated=10, p1=0.9)
    skin = ItemFactory(category_path="Beauty > Skin care")
    EventFactory(customer=t1, item=skin, occurred_at=sent + timedelta(hours=5))
    stats_refresh(batch_ids=[batch.id])
    client.force_login(analyst)
    page = " ".join(client.get("/").content.decode().split())
    # then the row says the window is still open, never that the model missed
    table = page.split('id="promises-table"')[1].split("</table>")[0]
    assert "window still open (12 days left)" in table
    assert "fewer than predicted" not in table
    assert '9.0 <span class="ci">[7, 10]</span> / 1' in table
    # the CSV export carries the same columns
    rows = list(csv.DictReader(io.StringIO(client.get(reverse("campaigns:dashboard_csv")).content.decode())))
    line = next(r for r in rows if r["level"] == "batch")
    assert (line["window_open"], line["buyers_predicted"], line["buyers_actual"]) == ("yes", "9.0", "1")
    assert (line["buyers_predicted_low"], line["buyers_predicted_high"]) == ("7", "10")
    assert (line["holdout_buyers_predicted"], line["holdout_buyers_actual"]) == ("0.75", "0")
    # once the window has closed, the same shortfall is a miss
    later = timezone.now() - timedelta(days=20)
    Batch.objects.filter(id=batch.id).update(sent_at=later)
    Recipient.objects.filter(batch=batch).update(sent_at=later)
    Event.objects.filter(customer=t1).update(occurred_at=later + timedelta(hours=5))
    stats_refresh(batch_ids=[batch.id])
    page = " ".join(client.get("/").content.decode().split())
    table = page.split('id="promises-table"')[1].split("</table>")[0]
    assert "window still open" not in table
    assert "treated buyers: fewer than predicted" in table
    assert "holdout buyers: as predicted" in table
