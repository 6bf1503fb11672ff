"""Where a promotion's lift comes from: how much likelier a customer responds with the offer than without.

The one home of the lift source hierarchy (docs/ARCHITECTURE.md, "Incremental value"). Every source is
measured on the same outcome as p0, the response model's: a purchase of the promotion's eligible items
within MEASUREMENT_DAYS after the send (Campaign.Response.ELIGIBLE_PURCHASE).

1. the uplift model (campaigns/services/uplift_targeting.py), the newest ready one, once it learned from
   the shop's past batches and their holdouts on that outcome only, and from enough of them: at least
   MIN_MODEL_RESPONDERS responders among the treated and as many among the held-out customers. Its
   predicted uplift of each customer, in probability, turns p0 into p1 = p0 + uplift (clipped to [0, 1]);
2. else the measured lift of the campaign's earlier batches against their holdouts on that outcome, once
   they hold at least MIN_HOLDOUT_RESPONDERS responders in the holdout (pooled over the batches):
   p1 = p0 x (treated rate / holdout rate);
3. else the expected lift the marketer states on the promotion (`Promotion.expected_lift`),
   p1 = p0 x (1 + lift), which the review page shows as an assumption.
"""

import logging
from dataclasses import dataclass, field

import numpy as np

from campaigns.models import BatchUplift, Campaign, UpliftModel
from campaigns.services.uplift_stats import groups_pool
from recommender.ml.response.value import treated_probability

log = logging.getLogger(__name__)
MIN_HOLDOUT_RESPONDERS = 30  # below this the measured rate of the holdout is too noisy to divide by
# A model of who responds *because* of the offer needs responders on both sides to learn a difference from:
# with fewer than this many in either group its per-customer uplift is mostly noise, and the pooled measure
# (source 2) or the marketer's statement (source 3) is the better guess.
MIN_MODEL_RESPONDERS = 100
ELIGIBLE = Campaign.Response.ELIGIBLE_PURCHASE

MODEL, EARLIER, STATED = "uplift model", "earlier batches", "stated on the promotion"


@dataclass
class Lift:
    relative: float | None  # p1 = p0 x (1 + relative); None: per customer (the uplift model)
    source: str  # MODEL, EARLIER or STATED
    detail: str
    model_id: int | None = None
    _uplift: dict = field(default_factory=dict, repr=False)  # customer id -> predicted uplift (the model)
    _predict: object = field(default=None, repr=False)

    def as_json(self):
        return {"relative": self.relative, "source": self.source, "detail": self.detail, "model": self.model_id}

    def prepare(self, customer_ids):
        """Before treated() on these customers: the uplift model predicts them in one go (once for all the
        promotions that share it); a relative lift needs nothing."""
        if self._predict is not None:
            self._uplift.clear()
            self._uplift.update(self._predict(customer_ids))

    def treated(self, p0, customer_id=None):
        """p1 from p0 for this customer."""
        if self.relative is None:
            return float(np.clip(p0 + self._uplift[customer_id], 0.0, 1.0))
        return float(treated_probability(p0, self.relative))

    def treated_many(self, p0, customer_ids):
        """treated() of each p0 and customer, as one float64 array: the same numbers, element by element."""
        p0 = np.asarray(p0, np.float64)
        if self.relative is None:
            return np.clip(p0 + np.array([self._uplift[c] for c in customer_ids], np.float64), 0.0, 1.0)
        return treated_probability(p0, self.relative)


def lifts_prepare(lifts, customer_ids):
    """Prepare each distinct Lift once for a chunk of customers (the promotions share the model's)."""
    for lift in {id(lift): lift for lift in lifts}.values():
        lift.prepare(customer_ids)


def campaign_lift(*, campaign_id, promotion, before_batch_id=None, at=None, model_lift=None):
    """The lift to assume for this promotion in this campaign's next batch. `model_lift`: the uplift model's
    Lift when the caller has it already (campaign_lifts shares one between the promotions)."""
    model = model_lift if model_lift is not None else uplift_model_lift(at=at)
    if model is not None:
        return model
    lift = _earlier_batches(campaign_id, before_batch_id)
    if lift is None:
        stated = float(promotion.expected_lift)
        lift = Lift(stated, STATED, f"{stated * 100:.0f}% more responses with the offer (an assumption)")
    lift.detail += f"; no uplift model: {uplift_model_unusable() or 'its file cannot be read (see the log)'}"
    return lift


def campaign_lifts(*, campaign_id, promotions, before_batch_id=None, at=None):
    """{promotion id: Lift} for a batch: one uplift model (loaded once) for every promotion, when it is usable."""
    model = uplift_model_lift(at=at)
    return {
        p.id: campaign_lift(campaign_id=campaign_id, promotion=p, before_batch_id=before_batch_id, model_lift=model)
        for p in promotions
    }


def _newest_ready():
    return UpliftModel.objects.filter(status=UpliftModel.Status.READY).order_by("-finished_at", "-id").first()


def uplift_model_unusable(model=None):
    """Why the newest ready uplift model is no source of lift, in words for the review page ("" when it is)."""
    model = model or _newest_ready()
    if model is None:
        return "none trained yet (Uplift models: it learns from sent batches with a holdout)"
    if model.responses != [ELIGIBLE]:
        return f"#{model.id} learnt from batches measured on another response than the purchase of the items"
    if min(model.responders_treated, model.responders_control) < MIN_MODEL_RESPONDERS:
        return (
            f"#{model.id} learnt from {model.responders_treated:,} treated and {model.responders_control:,} held-out "
            f"buyers of the items, under {MIN_MODEL_RESPONDERS} in a group"
        )
    return ""


def usable_uplift_model():
    """The newest ready uplift model when it can be a source of lift (see the module's docstring), else None."""
    model = _newest_ready()
    if model is None or uplift_model_unusable(model):
        return None
    return model


def uplift_model_lift(at=None):
    """The uplift model's Lift, or None when no model is usable (or its file cannot be read: logged)."""
    from campaigns.services.uplift_targeting import uplift_model_load, uplift_predict

    model = usable_uplift_model()
    if model is None:
        return None
    try:
        uplift_model_load(model)  # now: a missing or unreadable file falls back to the next source
    except Exception:
        log.exception("uplift model %s cannot be read; the lift comes from the next source", model.id)
        return None

    def predict(customer_ids):
        ids = list(customer_ids)
        return dict(zip(ids, (float(u) for u in uplift_predict(ids, at=at, model=model)))) if ids else {}

    rate_t = model.responders_treated / model.n_treated
    rate_c = model.responders_control / model.n_control
    return Lift(
        None,
        MODEL,
        f"uplift model #{model.id}, learnt from {len(model.batches)} past batch(es) and their holdouts "
        f"({model.responders_treated:,} of {model.n_treated:,} treated and {model.responders_control:,} of "
        f"{model.n_control:,} held-out customers bought the promotion's items: {rate_t * 100:.1f}% vs "
        f"{rate_c * 100:.1f}%): each customer's predicted uplift is added to p0",
        model_id=model.id,
        _predict=predict,
    )


def _earlier_batches(campaign_id, before_batch_id):
    rows = BatchUplift.objects.filter(batch__campaign_id=campaign_id, response=ELIGIBLE)
    if before_batch_id is not None:
        rows = rows.filter(batch_id__lt=before_batch_id)
    pooled = groups_pool(rows.values_list("groups", flat=True))
    treated, holdout = pooled.get("treated"), pooled.get("holdout")
    if not treated or not holdout or not treated["n"] or holdout["responders"] < MIN_HOLDOUT_RESPONDERS:
        return None
    rate_t, rate_c = treated["responders"] / treated["n"], holdout["responders"] / holdout["n"]
    relative = max(rate_t / rate_c - 1.0, 0.0)
    return Lift(
        relative,
        EARLIER,
        f"measured: {rate_t * 100:.1f}% of treated vs {rate_c * 100:.1f}% of holdout customers bought the "
        f"promotion's items ({int(treated['n']):,} and {int(holdout['n']):,} customers)",
    )
