"""The per-customer purchase summary that the behaviour rules count from (issue 15: under 2 s over 20M events).

PurchaseDay holds one row per customer and UTC day with purchases: how many, the spend, how many carried a
value. It covers every purchase event with an id up to AudienceSummary.watermark (W). A rule's window
"since" (the shop's clock less N days) is then counted, exactly, as

    the summary's days after since's day          (ids <= W; the refresh wrote them)
  + shop_event's purchases on since's day, from since on   (one day through the BRIN index on occurred_at)
  + shop_event's purchases after that day with id > W    (events stored since the refresh: the primary key)

so no ingestion path has to know about the summary. A window that holds most of the history (a year's
over a year of events) takes PurchaseTotal, each customer's sum of all days, less the days before it.
Back-dated events are stored with ids above W and are read raw until the next refresh puts them on their day.
Deletions and updates of events the summary covers (days and totals) are taken out of it by a statement
trigger on shop_event (migration 0017); a TRUNCATE empties it.

W only moves past an id once no transaction can still commit a smaller one: ids come from a sequence before
their transaction commits, so the refresh waits until every transaction that held a write lock on shop_event
when it read max(id) has ended (summary_refresh, _settled_high_water). The count reads W inside its own
statement, beside the summary rows of the same snapshot; the W known to Python is only a lower bound that
lets the planner read the newest events through the primary key.

On SQLite (embedded mode) there is no trigger and no refresh: the rules read the events as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time

from django.db import connection, transaction
from django.db.models import BigIntegerField, Exists, Max, Min, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import AudienceSummary, PurchaseDay, PurchaseTotal
from shop.models import Event, EventType

# Ids read per transaction of a refresh. At scale 1 (20M events in id order) a chunk of 2M ids is about
# 400,000 customer-days; each chunk commits, so a refresh stopped anywhere resumes from the watermark.
REFRESH_CHUNK_IDS = 2_000_000
WRITERS_WAIT_S = 30  # an import's transaction that outlasts this: the refresh stops short and is tried later
SUMMARY = PurchaseDay._meta.db_table
TOTALS = PurchaseTotal._meta.db_table
STATE = AudienceSummary._meta.db_table
EVENTS = Event._meta.db_table
MEASURES = {"frequency": "SUM(n)", "monetary": "CASE WHEN SUM(nv) > 0 THEN SUM(spend) END"}
OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "eq": "="}


@dataclass
class SummaryRefresh:
    watermark: int
    chunks: int = 0
    caught_up: bool = True  # False: writers still in flight, or max_seconds reached; run again


def summary_refresh(*, chunk_ids=REFRESH_CHUNK_IDS, max_seconds=None, wait_s=WRITERS_WAIT_S) -> SummaryRefresh:
    """Bring PurchaseDay up to the events committed now, chunk by chunk (a no-op but for max(id) when it is)."""
    if connection.vendor != "postgresql":
        return SummaryRefresh(watermark=0)
    started = time.monotonic()
    high = _settled_high_water(wait_s)
    result = SummaryRefresh(watermark=_watermark(), caught_up=high is not None)
    while high is not None and result.watermark < high:
        result.watermark = _refresh_chunk(high, chunk_ids)
        result.chunks += 1
        if result.watermark < high and max_seconds is not None and time.monotonic() - started > max_seconds:
            result.caught_up = False
            break
    if result.chunks and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            # The window's rows are read from the covering index alone once their pages are all-visible.
            cursor.execute(f"VACUUM (ANALYZE) {SUMMARY}, {TOTALS}")
    return result


def _watermark():
    state = AudienceSummary.objects.filter(id=1).first()
    return state.watermark if state else 0


def _settled_high_water(wait_s):
    """max(id) of shop_event once no transaction that could still commit an id at or below it is open,
    or None when one is still open after wait_s. Such a transaction holds a write lock on the table from
    before it took its ids until it ends; those that start later take ids above max(id)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT coalesce(max(id), 0) FROM {EVENTS}")
        (high,) = cursor.fetchone()
        writers = _writers(cursor, None)
        deadline = time.monotonic() + wait_s
        while writers:
            if time.monotonic() > deadline:
                return None
            time.sleep(0.2)
            writers = _writers(cursor, writers)
    return high


def _writers(cursor, among):
    """The other transactions holding a write lock on shop_event now (of those in `among`, when given)."""
    cursor.execute(
        "SELECT DISTINCT virtualtransaction FROM pg_locks WHERE relation = %s::regclass "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()",  # databases copied from one share oids
        [EVENTS],
    )
    now = {vxid for (vxid,) in cursor.fetchall()}
    return now if among is None else now & among


def _refresh_chunk(high, chunk_ids):
    with transaction.atomic(), connection.cursor() as cursor:
        # FOR UPDATE: one refresh at a time, and the delete trigger waits for this one's watermark.
        AudienceSummary.objects.get_or_create(id=1)
        cursor.execute(f"SELECT watermark FROM {STATE} WHERE id = 1 FOR UPDATE")
        (mark,) = cursor.fetchone()
        # The chunk starts at the first id above the mark, so a gap in the ids (deleted events, ids a rolled-back
        # write took) costs one look, not a transaction per chunk_ids of it.
        cursor.execute(f"SELECT min(id) FROM {EVENTS} WHERE id > %s", [mark])
        (first,) = cursor.fetchone()
        upto = high if first is None else min(first - 1 + chunk_ids, high)
        if upto <= mark:
            return mark
        cursor.execute(
            "WITH chunk AS (SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n, "
            f"count(value) AS nv, coalesce(sum(value), 0) AS spend FROM {EVENTS} "
            "WHERE id > %s AND id <= %s AND type = %s GROUP BY 1, 2), "
            f"days AS (INSERT INTO {SUMMARY} AS p (customer_id, day, n, nv, spend) SELECT * FROM chunk "
            "ON CONFLICT (customer_id, day) DO UPDATE "
            "SET n = p.n + excluded.n, nv = p.nv + excluded.nv, spend = p.spend + excluded.spend) "
            f"INSERT INTO {TOTALS} AS t (customer_id, n, nv, spend) "
            "SELECT customer_id, sum(n), sum(nv), sum(spend) FROM chunk GROUP BY 1 "
            "ON CONFLICT (customer_id) DO UPDATE "
            "SET n = t.n + excluded.n, nv = t.nv + excluded.nv, spend = t.spend + excluded.spend",
            [mark, upto, EventType.PURCHASE],
        )
        AudienceSummary.objects.filter(id=1).update(watermark=upto, refreshed_at=timezone.now())
        return upto


class PurchaseSource:
    """Where a count reads purchases from: the summary (with the W and the days known now), or None for the
    raw events."""

    def __init__(self, watermark, first_day, last_day):
        self.watermark = watermark
        self.first_day, self.last_day = first_day, last_day

    @classmethod
    def current(cls):
        if connection.vendor != "postgresql":
            return None
        watermark = _watermark()
        if watermark <= 0:
            return None
        days = PurchaseDay.objects.aggregate(first=Min("day"), last=Max("day"))  # the (day) index's two ends
        return cls(watermark, days["first"], days["last"])

    def per_customer(self, field, since, op=None, bound=None):
        """RawSQL of the customers with a purchase since `since` whose count or spend compares with bound
        (every customer with a purchase when op is None), as the events' GROUP BY customer_id gives it.

        The summary's part is the window's days, or, when they are most of the history (a year's window
        over a year of events), each customer's total less the days before the window: a million totals
        read in order instead of four million days hashed."""
        edge_day, next_day = _edge(since)
        # Only the sums the comparison needs: a numeric SUM of spend is most of a count's aggregation.
        columns = ("n", "nv", "spend") if field == "monetary" and op is not None else ("n",)
        summarized, params = self._summarized(edge_day, columns)
        raw, raw_params = self._raw(since, next_day, columns)
        total = {c: f"coalesce(s.{c}, 0) + coalesce(r.{c}, 0)" for c in columns}
        where = f"{total['n']} > 0"
        if op is not None:
            measure = total["n"] if field == "frequency" else f"CASE WHEN {total['nv']} > 0 THEN {total['spend']} END"
            where += f" AND {measure} {OPERATORS[op]} %s"
        sql = (
            f"SELECT coalesce(s.customer_id, r.customer_id) FROM ({summarized}) AS s "
            f"FULL JOIN ({raw}) AS r ON r.customer_id = s.customer_id WHERE {where}"
        )
        return RawSQL(sql, [*params, *raw_params, *([bound] if op is not None else [])])

    def _summarized(self, edge_day, columns):
        sums = ", ".join(f"SUM({c}) AS {c}" for c in columns)
        per_day = f"SELECT customer_id, {sums} FROM {SUMMARY} WHERE day {{}} %s GROUP BY customer_id"
        if self.first_day is None or (self.last_day - edge_day) <= (edge_day - self.first_day):
            return per_day.format(">"), [edge_day]
        less = ", ".join(f"t.{c} - coalesce(b.{c}, 0) AS {c}" for c in columns)
        before = per_day.format("<=")
        return f"SELECT t.customer_id, {less} FROM {TOTALS} AS t LEFT JOIN ({before}) AS b USING (customer_id)", [
            edge_day
        ]

    def _raw(self, since, next_day, columns):
        """Each customer's purchases from since to the end of its day, and those after it not yet summarized:
        W as of the statement (the summary rows beside it are of the same snapshot), and never below the W
        read above, which the planner sees as a constant and so reads the newest events by the primary key."""
        sums = {"n": "count(*) AS n", "nv": "count(value) AS nv", "spend": "coalesce(sum(value), 0) AS spend"}
        sql = (
            f"SELECT customer_id, {', '.join(sums[c] for c in columns)} FROM ("
            f"SELECT customer_id, value FROM {EVENTS} WHERE type = %s AND occurred_at >= %s AND occurred_at < %s "
            f"UNION ALL SELECT customer_id, value FROM {EVENTS} WHERE type = %s AND occurred_at >= %s "
            f"AND id > %s AND id > (SELECT coalesce(max(watermark), 0) FROM {STATE})) AS purchases GROUP BY customer_id"
        )
        return sql, [EventType.PURCHASE, since, next_day, EventType.PURCHASE, next_day, self.watermark]

    def bought_since(self, since, *, negated=False):
        """Q: the customer has a purchase since `since` (negated: has none, as three anti-joins)."""
        edge_day, next_day = _edge(since)
        purchases = Event.objects.filter(customer_id=OuterRef("pk"), type=EventType.PURCHASE)
        parts = [
            PurchaseDay.objects.filter(customer_id=OuterRef("pk"), day__gt=edge_day, n__gt=0),
            purchases.filter(occurred_at__gte=since, occurred_at__lt=next_day),
            purchases.filter(occurred_at__gte=next_day, id__gt=self.watermark).filter(id__gt=_statement_watermark()),
        ]
        combined = Q()
        for part in parts:
            combined = (combined & ~Q(Exists(part))) if negated else (combined | Q(Exists(part)))
        return combined


def _statement_watermark():
    return RawSQL(f"SELECT coalesce(max(watermark), 0) FROM {STATE}", [], output_field=BigIntegerField())


def _edge(since):
    """since's UTC day (read from the events, from since on) and the start of the next (from the summary)."""
    day = since.astimezone(UTC).date()
    return day, datetime.combine(day + timedelta(days=1), clock_time.min, tzinfo=UTC)
