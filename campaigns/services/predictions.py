"""Did the model keep its promise? A sent batch's predicted buyers of the offered items against those who
bought them in the measurement window, for the recipients (predicted Σ p1) and the holdout (Σ p0), each
prediction with its 90% interval, and the expected redemptions against the attributed conversions.

The batch page computes it here from the rows; the dashboard reads the same sums from BatchUplift.groups
(campaigns/services/stats.py), rebuilt with the other aggregates."""

import math

from django.utils import timezone

from campaigns.models import BatchDailyStats, Recipient
from campaigns.services.stats import batch_send_time, group_rows, predicted_and_bought
from campaigns.services.uplift_stats import Promise, group_promise
from promo_site.demo import measurement_window


def window_left(end, now=None):
    """Empty once the window has ended, else how long it still runs in words ("3 days left", "5 minutes left"):
    until then a low actual is not a miss."""
    left = (end - (now or timezone.now())).total_seconds()
    if left <= 0:
        return ""
    for unit, seconds in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if left >= seconds:
            n = math.ceil(left / seconds)
            return f"{n} {unit}{'s' if n != 1 else ''} left"
    return "under a minute left"


def batch_predicted_vs_actual(*, batch):
    """None before the batch is sent; else the window, whether it is still open, and per group the Promise
    (n, predicted, its 90% interval, actual) on the buyers of the eligible items of the promotion each
    customer was given (or would have been: the holdout), plus the expected redemptions and their interval
    against the attributed conversions."""
    start = batch_send_time(batch)
    if start is None:
        return None
    end = start + measurement_window()  # the uplift's window: in the demo, its time scale too
    conversions = sum(BatchDailyStats.objects.filter(batch=batch).values_list("conversions", flat=True))
    summary = batch.summary or {}
    interval = summary.get("intervals", {}).get("redemptions")
    left = window_left(end)
    recipients = _promise(batch, "treated", start, end)
    holdout = _promise(batch, Recipient.Reason.HOLDOUT, start, end)
    redemptions = None
    if interval:
        redemptions = Promise(
            n=summary.get("recipients", 0),
            predicted=interval[0],
            low=int(interval[1]),
            high=int(interval[2]),
            actual=conversions,
        )
    return {
        "window_start": start,
        "window_end": end,
        "complete": not left,
        "left": left,
        "recipients": recipients,
        "holdout": holdout,
        "redemptions": redemptions,
        "rows": [
            ("recipients who bought the offered items (Σ p1)", recipients),
            ("holdout customers who bought them without the offer (Σ p0)", holdout),
        ],
    }


def _promise(batch, group, start, end):
    return group_promise(predicted_and_bought(group_rows(batch, group), group == "treated", start, end))
