"""Did the model keep its promise? A sent batch's predicted buyers of the offered items against those who
bought them in the measurement window, for the recipients (predicted Σ p1) and the holdout (Σ p0)."""

from django.db.models import Sum
from django.utils import timezone

from campaigns.models import BatchDailyStats, Promotion, Recipient
from campaigns.services.stats import batch_send_time
from promo_site.demo import measurement_window
from shop.models import Event, EventType


def batch_predicted_vs_actual(*, batch):
    """None before the batch is sent; else the window and, per group, predicted and actual buyers of the
    eligible items of the promotion each customer was given (or would have been: the holdout), plus the
    expected redemptions against the attributed conversions."""
    start = batch_send_time(batch)
    if start is None:
        return None
    end = start + measurement_window()  # the uplift's window: in the demo, its time scale too
    recipients = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT, send_status=Recipient.SendStatus.SENT)
    holdout = batch.recipients.filter(reason=Recipient.Reason.HOLDOUT, promotion__isnull=False)
    conversions = BatchDailyStats.objects.filter(batch=batch).aggregate(n=Sum("conversions"))["n"] or 0
    return {
        "window_start": start,
        "window_end": end,
        "complete": timezone.now() >= end,
        "recipients": _buyers(recipients, "p_response", start, end),
        "holdout": _buyers(holdout, "p_baseline", start, end),
        "redemptions": {
            "predicted": (batch.summary or {}).get("expected", {}).get("redemptions"),
            "actual": conversions,
        },
    }


def _buyers(rows, probability, start, end):
    predicted, actual, n = 0.0, 0, 0
    for promotion_id in rows.values_list("promotion_id", flat=True).distinct().order_by():
        group = rows.filter(promotion_id=promotion_id)
        n += group.count()
        predicted += group.aggregate(p=Sum(probability))["p"] or 0.0
        eligible = Promotion.objects.get(id=promotion_id).eligible_items().values("id")
        actual += (
            Event.objects.filter(
                type=EventType.PURCHASE,
                customer_id__in=group.values("customer_id"),
                item_id__in=eligible,
                occurred_at__gte=start,
                occurred_at__lt=end,
            )
            .values("customer_id")
            .distinct()
            .count()
        )
    return {"n": n, "predicted": predicted, "actual": actual}
