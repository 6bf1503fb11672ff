"""Where a promotion's lift comes from: how much likelier a customer responds with the offer than without.

The one home of the lift source hierarchy (docs/ARCHITECTURE.md, "Incremental value"):

1. the measured lift of the campaign's earlier batches against their holdouts, once they hold at least
   MIN_HOLDOUT_RESPONDERS responders in the holdout (pooled over the batches);
2. else the expected lift the marketer states on the promotion (`Promotion.expected_lift`), which the review
   page shows as an assumption.

The uplift model (campaigns/services/uplift_targeting.py) is not a source yet: it predicts the difference
in the campaign's measured response (any purchase), not in the purchase of the promotion's items.
"""

from dataclasses import dataclass

from campaigns.models import BatchUplift
from campaigns.services.uplift_stats import groups_pool

MIN_HOLDOUT_RESPONDERS = 30  # below this the measured rate of the holdout is too noisy to divide by


@dataclass(frozen=True)
class Lift:
    relative: float  # p1 = p0 x (1 + relative)
    source: str  # "earlier batches" or "stated on the promotion"
    detail: str

    def as_json(self):
        return {"relative": self.relative, "source": self.source, "detail": self.detail}


def campaign_lift(*, campaign_id, promotion, before_batch_id=None):
    """The lift to assume for this promotion in this campaign's next batch."""
    measured = _earlier_batches(campaign_id, before_batch_id)
    if measured is not None:
        return measured
    stated = float(promotion.expected_lift)
    return Lift(stated, "stated on the promotion", f"{stated * 100:.0f}% more responses with the offer (an assumption)")


def _earlier_batches(campaign_id, before_batch_id):
    rows = BatchUplift.objects.filter(batch__campaign_id=campaign_id)
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
        "earlier batches",
        f"measured: {rate_t * 100:.1f}% of treated vs {rate_c * 100:.1f}% of holdout customers responded "
        f"({int(treated['n'])} and {int(holdout['n'])} customers)",
    )
