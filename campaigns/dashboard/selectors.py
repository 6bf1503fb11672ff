"""What the dashboard shows, read from the aggregates only (BatchDailyStats, BatchUplift): a few small
queries whatever the number of messages behind them."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.db.models import Sum
from django.urls import reverse

from campaigns.models import Batch, BatchDailyStats, BatchUplift, Campaign
from campaigns.services.predictions import window_left
from campaigns.services.uplift_stats import Promise, differences_sum, group_promise, groups_compare, groups_pool

FUNNEL = ["targeted", "sent", "delivered", "opened", "clicked", "converted"]
COUNTS = [*FUNNEL, "unsubscribed", "not_interested", "conversions"]
MONEY = ["revenue", "discount", "margin"]
MAX_CHART_DAYS = 3 * 366


@dataclass
class Row:
    """One line of the table: a campaign, or a batch of it."""

    campaign: Campaign
    batch: Batch | None = None
    totals: dict = field(default_factory=lambda: dict.fromkeys(COUNTS + MONEY, 0))
    groups: dict = field(default_factory=dict)  # pooled BatchUplift.groups
    response_label: str = "conversion"
    predicted: float | None = None  # expected redemptions when generated (Σ p1 over the recipients)
    predicted_range: tuple | None = None  # and their 90% interval
    window_end: object = None  # the end of the batch's measurement window (None before its aggregates)

    @property
    def predicted_over_actual(self):
        """Expected redemptions ÷ attributed conversions: above 1 the model promised more than came."""
        actual = self.totals["conversions"]
        return self.predicted / actual if self.predicted is not None and actual else None

    @property
    def window_left(self):
        """How long the measurement window still runs ("3 days left"), "" once it ended."""
        return window_left(self.window_end) if self.window_end else ""

    @property
    def buyers(self):
        """Treated customers who bought their promotion's eligible items in the window: Promise (Σ p1)."""
        return group_promise(self.groups.get("treated"))

    @property
    def holdout_buyers(self):
        """Held-out customers who bought them without the offer: Promise (Σ p0)."""
        return group_promise(self.groups.get("holdout"))

    @property
    def redemptions(self):
        """Expected redemptions and their 90% interval against the attributed conversions: Promise."""
        if self.predicted is None or not self.predicted_range:
            return None
        low, high = self.predicted_range
        return Promise(self.totals["sent"], self.predicted, int(low), int(high), self.totals["conversions"])

    @property
    def promises(self):
        return [self.buyers, self.holdout_buyers, self.redemptions]

    @property
    def promise_checks(self):
        return list(zip(["treated buyers", "holdout buyers", "redemptions"], self.promises))

    @property
    def label(self):
        if self.batch is None:
            return self.campaign.name
        extra = self.batch.settings.label
        return f"#{self.batch.number}" + (f" {extra}" if extra else "")

    @property
    def comparison(self):
        return groups_compare(self.groups, "holdout")

    @property
    def global_comparison(self):
        return groups_compare(self.groups, "global_holdout")

    @property
    def feedback_rate(self):
        """Share of delivered messages answered "not interested" (of sent ones when no delivery is reported)."""
        base = self.totals["delivered"] or self.totals["sent"]
        return self.totals["not_interested"] / base if base else None


def dashboard_filters(params):
    """(campaign id or None, date_from or None, date_to or None) from the query string; bad values ignored."""

    def day(name):
        try:
            return date.fromisoformat(params.get(name, ""))
        except ValueError:
            return None

    campaign = params.get("campaign", "")
    return (int(campaign) if campaign.isdigit() else None), day("from"), day("to")


def dashboard_data(*, campaign_id=None, date_from=None, date_to=None):
    """Rows per campaign and per batch, the daily series, the uplift per batch and the global holdout."""
    stats = BatchDailyStats.objects.all()
    if campaign_id:
        stats = stats.filter(batch__campaign_id=campaign_id)
    if date_from:
        stats = stats.filter(day__gte=date_from)
    if date_to:
        stats = stats.filter(day__lte=date_to)
    per_batch = {
        row.pop("batch_id"): row
        for row in stats.values("batch_id").annotate(**{c: Sum(c) for c in COUNTS + MONEY}).order_by()
    }
    batches = list(
        Batch.objects.filter(id__in=per_batch).select_related("campaign").order_by("campaign__name", "number")
    )
    uplifts = {u.batch_id: u for u in BatchUplift.objects.filter(batch__in=batches)}
    rows, by_campaign = [], {}
    for batch in batches:
        uplift = uplifts.get(batch.id)
        row = Row(batch.campaign, batch, _clean(per_batch[batch.id]), uplift.groups if uplift else {})
        row.response_label = batch.campaign.get_measured_response_display()
        row.predicted, row.predicted_range = _predicted(batch)
        row.window_end = uplift.window_end if uplift else None
        rows.append(row)
        by_campaign.setdefault(batch.campaign_id, []).append(row)
    campaign_rows = [_campaign_row(batch_rows) for batch_rows in by_campaign.values()]
    return {
        "campaign_rows": campaign_rows,
        "batch_rows": rows,
        "daily": _daily(stats),
        "global_holdout": _global_holdout(rows, uplifts),
    }


def _clean(totals):
    return {k: (v or 0) for k, v in totals.items()}


def _campaign_row(batch_rows):
    row = Row(batch_rows[0].campaign, response_label=batch_rows[0].response_label)
    for batch_row in batch_rows:
        for key in COUNTS + MONEY:
            row.totals[key] += batch_row.totals[key]
    row.groups = groups_pool([b.groups for b in batch_rows])
    predicted = [b.predicted for b in batch_rows if b.predicted is not None]
    row.predicted = sum(predicted) if predicted else None
    ends = [b.window_end for b in batch_rows if b.window_end]
    row.window_end = max(ends) if ends else None  # open while any of its batches' windows is
    return row


def _predicted(batch):
    """What the batch's review page promised: expected redemptions and their interval (from its summary)."""
    expected = (batch.summary or {}).get("expected", {}).get("redemptions")
    interval = (batch.summary or {}).get("intervals", {}).get("redemptions")
    return expected, (tuple(interval[1:]) if interval else None)


def _daily(stats):
    """Per-day sums for the charts, with the quiet days in between as zeros (up to MAX_CHART_DAYS)."""
    rows = {row["day"]: row for row in stats.values("day").annotate(**{c: Sum(c) for c in COUNTS + MONEY})}
    days = sorted(rows)
    if days and (days[-1] - days[0]).days < MAX_CHART_DAYS:
        days = [days[0] + timedelta(days=n) for n in range((days[-1] - days[0]).days + 1)]
    series = defaultdict(list)
    for day in days:
        row = rows.get(day, {})
        series["day"].append(day.isoformat())
        for key in COUNTS:
            series[key].append(row.get(key) or 0)
        for key in MONEY:
            series[key].append(float(row.get(key) or 0))
    return dict(series)


def _global_holdout(rows, uplifts):
    """Incremental revenue against the global holdout, batch by batch in send order, and cumulated."""
    points, differences = [], []
    measured = [r for r in rows if r.batch.id in uplifts]
    for row in sorted(measured, key=lambda r: (uplifts[r.batch.id].window_start, r.batch.id)):
        comparison = row.global_comparison
        if comparison is None or comparison.incremental_revenue is None:
            continue
        differences.append(comparison.incremental_revenue)
        total = differences_sum(differences)
        points.append({"batch": f"{row.campaign.name} {row.label}", "estimate": total.estimate, "low": total.low,
                       "high": total.high})  # fmt: skip
    return {"points": points, "total": differences_sum(differences)}


def campaign_choices():
    return list(Campaign.objects.filter(batches__daily_stats__isnull=False).distinct().order_by("name"))


NEXT_STEP = {
    Batch.Status.SENDING: "is being sent; its figures appear here when it finishes.",
    Batch.Status.APPROVED: "is approved: send it from its page.",
    Batch.Status.GENERATED: "awaits review: an approver (not its author) approves it.",
    Batch.Status.GENERATING: "is being generated.",
}


def next_steps(user):
    """What to do next when nothing has been sent yet: (text, link) pairs, the most advanced batch first.

    The walk is generate -> approve (another user) -> send; each step names the batch or campaign it is about
    and links to the page where it is done, so a newcomer's first page is never a dead end.
    """
    steps = []
    batches = Batch.objects.filter(status__in=NEXT_STEP).select_related("campaign").order_by("-id")[:3]
    for batch in sorted(batches, key=lambda b: list(NEXT_STEP).index(b.status)):
        url = reverse("admin:campaigns_batch_change", args=[batch.pk])
        steps.append((f"Batch #{batch.number} of {batch.campaign} {NEXT_STEP[batch.status]}", url))
    if not steps:
        for campaign in Campaign.objects.filter(batches__isnull=True).order_by("id")[:2]:
            url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
            steps.append((f'The campaign {campaign} is ready: open it and press "Generate a batch".', url))
    if user.has_perm("campaigns.add_campaign"):
        steps.append(("Create a campaign of your own.", reverse("admin:campaigns_campaign_add")))
    return steps
