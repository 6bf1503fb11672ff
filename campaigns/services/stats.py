"""The dashboard's aggregates: per batch and day (BatchDailyStats) and per batch and group (BatchUplift).

Both are rebuilt per batch from the raw rows, one SQL statement each, and replaced in one transaction:
the page only ever reads these small tables. stats_refresh runs every 5 minutes for the batches still
collecting events, and shortly after attribution credited a batch. Measured cost at a million
messages: docs/benchmarks.md (`python bench/dashboard.py`).
"""

from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q, Sum
from django.utils import timezone

from campaigns.models import Batch, BatchDailyStats, BatchUplift, Campaign, MessageEvent, Promotion, Recipient
from promo_site.demo import measurement_window, stats_horizon
from shop.models import Event, EventType

Kind = MessageEvent.Kind
FUNNEL_KINDS = {
    "delivered": Kind.DELIVERED,
    "opened": Kind.OPENED,
    "clicked": Kind.CLICKED,
    "unsubscribed": Kind.UNSUBSCRIBED,
    "not_interested": Kind.NOT_INTERESTED,
}
COLUMNS = ["targeted", "sent", *FUNNEL_KINDS, "converted", "conversions", "revenue", "discount", "margin"]
MEASURED = [Batch.Status.SENDING, Batch.Status.PAUSED, Batch.Status.SENT]
GROUPS = {"treated", Recipient.Reason.HOLDOUT, Recipient.Reason.GLOBAL_HOLDOUT}
# The event type of each measured response; the eligible purchase is a purchase of one of the items of the
# customer's promotion, counted by eligible_buyers (its SQL type only makes the statement read purchases).
RESPONSE_TYPES = {
    Campaign.Response.ELIGIBLE_PURCHASE: "purchase",
    Campaign.Response.PURCHASE: "purchase",
    Campaign.Response.VISIT: "view",
}


def _row(**values):
    """One branch of the UNION: the named columns, zeros elsewhere."""
    return ", ".join(f"{values.get(column, '0')} AS {column}" for column in COLUMNS)


def _day(column):
    """The UTC day of a datetime column, as Django's TruncDate writes it for this database.

    A plain CAST(... AS date) is not portable: SQLite gives a date column numeric affinity, so
    CAST('2026-12-02' AS date) is the integer 2026 there. The time zone names are constants, so they
    are written into the SQL rather than passed as parameters (the statement's are named ones).
    """
    sql, params = connection.ops.datetime_cast_date_sql(column, (), "UTC")
    return sql % tuple("NULL" if p is None else "'" + str(p).replace("'", "''") + "'" for p in params)


def _funnel_sql():
    firsts = {name: f"SUM(CASE WHEN kind = '{kind}' THEN 1 ELSE 0 END)" for name, kind in FUNNEL_KINDS.items()}
    kinds = ", ".join(f"'{kind}'" for kind in FUNNEL_KINDS.values())
    return f"""
    INSERT INTO campaigns_batchdailystats (batch_id, day, {", ".join(COLUMNS)})
    SELECT %(batch)s, day, {", ".join(f"SUM({c})" for c in COLUMNS)} FROM (
        SELECT %(generated)s AS day, {_row(targeted="COUNT(*)")}
        FROM campaigns_recipient WHERE batch_id = %(batch)s AND outcome = 'recipient' HAVING COUNT(*) > 0
      UNION ALL
        SELECT {_day("sent_at")}, {_row(sent="COUNT(*)")}
        FROM campaigns_recipient WHERE batch_id = %(batch)s AND send_status = 'sent' AND sent_at IS NOT NULL
        GROUP BY {_day("sent_at")}
      UNION ALL
        SELECT {_day("first_at")}, {_row(**firsts)} FROM (
            SELECT e.recipient_id, e.kind, MIN(e.occurred_at) AS first_at
            FROM campaigns_messageevent e JOIN campaigns_recipient r ON r.id = e.recipient_id
            WHERE r.batch_id = %(batch)s AND e.is_bot = %(false)s AND e.kind IN ({kinds})
            GROUP BY e.recipient_id, e.kind
        ) firsts GROUP BY {_day("first_at")}
      UNION ALL
        SELECT {_day("first_at")}, {_row(converted="COUNT(*)")} FROM (
            SELECT recipient_id, MIN(occurred_at) AS first_at FROM campaigns_conversion
            WHERE batch_id = %(batch)s GROUP BY recipient_id
        ) converters GROUP BY {_day("first_at")}
      UNION ALL
        SELECT {_day("occurred_at")}, {
        _row(conversions="COUNT(*)", revenue="SUM(revenue)", discount="SUM(discount)", margin="SUM(margin)")
    }
        FROM campaigns_conversion WHERE batch_id = %(batch)s GROUP BY {_day("occurred_at")}
    ) parts GROUP BY day
    """


# Per customer of the batch's treated (sent) and holdout groups: their events in the window, summed.
# Profit = margin at list price - discount = value - cost x quantity (DEFAULT_MARGIN_RATE without a cost).
_GROUPS_SQL = """
    SELECT grp, COUNT(*), SUM(responded), SUM(revenue), SUM(revenue * revenue), SUM(profit), SUM(profit * profit)
    FROM (
        SELECT r.id, CASE WHEN r.outcome = 'recipient' THEN 'treated' ELSE r.reason END AS grp,
            MAX(CASE WHEN e.type = %(response)s THEN 1 ELSE 0 END) AS responded,
            COALESCE(SUM(CASE WHEN e.type = 'purchase' THEN COALESCE(e.value, 0) END), 0) AS revenue,
            COALESCE(SUM(CASE WHEN e.type = 'purchase' THEN
                CASE WHEN i.cost IS NOT NULL THEN COALESCE(e.value, 0) - i.cost * e.quantity
                ELSE %(rate)s * (COALESCE(e.value, 0) + e.discount) - e.discount END
            END), 0) AS profit
        FROM campaigns_recipient r
        LEFT JOIN shop_event e ON e.customer_id = r.customer_id AND e.occurred_at >= %(start)s
            AND e.occurred_at < %(end)s AND e.type IN ('purchase', %(response)s)
        LEFT JOIN shop_item i ON i.id = e.item_id
        WHERE r.batch_id = %(batch)s AND (
            (r.outcome = 'recipient' AND r.send_status = 'sent') OR r.reason IN ('holdout', 'global_holdout'))
        GROUP BY r.id, r.outcome, r.reason
    ) customers GROUP BY grp
"""


def batch_send_time(batch):
    """When a batch went out: the start of its measurement window (None before it is sent)."""
    if batch.send_started_at or batch.sent_at:
        return batch.send_started_at or batch.sent_at
    return batch.recipients.filter(sent_at__isnull=False).aggregate(first=Min("sent_at"))["first"]


def group_rows(batch, group):
    """A batch's customers of one group of the comparison: "treated" (sent), "holdout" or "global_holdout"."""
    if group == "treated":
        return batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT, send_status=Recipient.SendStatus.SENT)
    return batch.recipients.filter(reason=group)


def eligible_buyers(rows, start, end):
    """The ids of the rows (Recipient) whose customer bought an eligible item of the row's promotion in
    [start, end): the measured response "a purchase of the promotion's eligible items". A held-out row has the
    promotion it would have been given (generation chooses it before holding the customer out); a row
    without a promotion never responds. One query per promotion, the items' rule inside it."""
    buyers = set()
    for promotion in Promotion.objects.filter(id__in=rows.values("promotion_id")).order_by("id"):
        bought = Event.objects.filter(
            customer_id=OuterRef("customer_id"),
            type=EventType.PURCHASE,
            occurred_at__gte=start,
            occurred_at__lt=end,
            item_id__in=promotion.eligible_items().values("id"),
        )
        buyers.update(rows.filter(promotion=promotion).filter(Exists(bought)).values_list("id", flat=True))
    return buyers


def batch_daily_rebuild(*, batch):
    generated = (batch.generated_at or batch.created_at).date()
    with transaction.atomic():
        BatchDailyStats.objects.filter(batch=batch).delete()
        with connection.cursor() as cursor:
            params = {"batch": batch.id, "generated": connection.ops.adapt_datefield_value(generated), "false": False}
            cursor.execute(_funnel_sql(), params)


def batch_uplift_rebuild(*, batch):
    """Sum each group's per-customer outcomes over the measurement window after the send."""
    start = batch_send_time(batch)
    if start is None:
        return None
    end = start + measurement_window()
    response = RESPONSE_TYPES[batch.campaign.measured_response]
    rate = Decimal(str(settings.DEFAULT_MARGIN_RATE))
    params = {"batch": batch.id, "start": start, "end": end, "response": response, "rate": rate}
    with connection.cursor() as cursor:
        cursor.execute(_GROUPS_SQL, params)
        rows = cursor.fetchall()
    names = ["n", "responders", "revenue", "revenue_sq", "profit", "profit_sq"]
    groups = {row[0]: dict(zip(names, (float(v or 0) for v in row[1:]))) for row in rows if row[0] in GROUPS}
    for name, sums in groups.items():
        sums.update(predicted_and_bought(group_rows(batch, name), name == "treated", start, end))
        if batch.campaign.measured_response == Campaign.Response.ELIGIBLE_PURCHASE:
            sums["responders"] = sums["buyers"]
    uplift, _ = BatchUplift.objects.update_or_create(
        batch=batch,
        defaults={
            "response": batch.campaign.measured_response,
            "window_start": start,
            "window_end": end,
            "groups": groups,
        },
    )
    return uplift


def predicted_and_bought(rows, treated, start, end):
    """What the model promised a group and what came, on the outcome it predicts (a purchase of the
    promotion's eligible items in the window): predicted = Σ p1 over the treated, Σ p0 over the held out
    (without an offer), over the predicted_n customers given a promotion; predicted_var = Σ p (1 - p) for its
    interval (independent Bernoulli draws); buyers = those who bought. `rows`: the group's Recipient rows;
    `treated`: whether they were sent the offer."""
    p = F("p_response" if treated else "p_baseline")
    promised = rows.filter(promotion__isnull=False, **{f"{p.name}__isnull": False})
    sums = promised.aggregate(predicted_n=Count("id"), predicted=Sum(p), predicted_var=Sum(p - p * p))
    return {
        "predicted_n": float(sums["predicted_n"]),
        "predicted": float(sums["predicted"] or 0),
        "predicted_var": float(sums["predicted_var"] or 0),
        "buyers": float(len(eligible_buyers(rows, start, end))),
    }


def batches_to_refresh(now=None):
    """Batches still collecting events, and sent batches never aggregated."""
    now = now or timezone.now()
    horizon = now - stats_horizon()
    return Batch.objects.filter(status__in=MEASURED).filter(
        Q(status__in=[Batch.Status.SENDING, Batch.Status.PAUSED])
        | Q(sent_at__gte=horizon)
        | Q(send_started_at__gte=horizon)
        | Q(uplift__isnull=True)
    )


def stats_refresh(*, batch_ids=None):
    """Rebuild the aggregates of these batches (default: batches_to_refresh()); returns how many."""
    batches = Batch.objects.filter(id__in=batch_ids) if batch_ids is not None else batches_to_refresh()
    count = 0
    for batch in batches.select_related("campaign").order_by("id"):
        batch_daily_rebuild(batch=batch)
        batch_uplift_rebuild(batch=batch)
        count += 1
    return count
