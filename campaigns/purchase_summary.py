"""The per-customer purchase summary that the behaviour rules count from (issue 15: under 2 s over 20M events).

PurchaseDay holds one row per customer and UTC day with purchases: how many, the spend, how many carried a
value. It covers every purchase event with an id up to AudienceSummary.watermark (W). A rule's window
"since" (the shop's clock less N days) is then counted, exactly, as

    the summary's days after since's day          (ids <= W; the refresh wrote them)
  + shop_event's purchases on since's day, from since on   (one day through the BRIN index on occurred_at)
  + shop_event's purchases after that day with id > W    (events stored since the refresh: the primary key)

so no ingestion path has to know about the summary. Back-dated events are stored with ids above W and are
read raw until the next refresh puts them on their day. Deletions and updates of events the summary covers
are taken out of it by a statement trigger on shop_event (migration 0017); a TRUNCATE empties it.

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
from django.db.models import BigIntegerField, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from campaigns.models import AudienceSummary, PurchaseDay
from shop.models import Event, EventType

# Ids read per transaction of a refresh. At scale 1 (20M events in id order) a chunk of 2M ids is about
# 400,000 customer-days; each chunk commits, so a refresh stopped anywhere resumes from the watermark.
REFRESH_CHUNK_IDS = 2_000_000
WRITERS_WAIT_S = 30  # an import's transaction that outlasts this: the refresh stops short and is tried later
SUMMARY = PurchaseDay._meta.db_table
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
            cursor.execute(f"VACUUM (ANALYZE) {SUMMARY}")
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
        "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()",
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
        upto = min(mark + chunk_ids, high)
        if upto <= mark:
            return mark
        cursor.execute(
            f"INSERT INTO {SUMMARY} AS p (customer_id, day, n, nv, spend) "
            "SELECT customer_id, (occurred_at AT TIME ZONE 'UTC')::date, count(*), count(value), "
            f"coalesce(sum(value), 0) FROM {EVENTS} WHERE id > %s AND id <= %s AND type = %s GROUP BY 1, 2 "
            "ON CONFLICT (customer_id, day) DO UPDATE "
            "SET n = p.n + excluded.n, nv = p.nv + excluded.nv, spend = p.spend + excluded.spend",
            [mark, upto, EventType.PURCHASE],
        )
        AudienceSummary.objects.filter(id=1).update(watermark=upto, refreshed_at=timezone.now())
        return upto


class PurchaseSource:
    """Where a count reads purchases from: the summary (with the W known now), or None for the raw events."""

    def __init__(self, watermark):
        self.watermark = watermark

    @classmethod
    def current(cls):
        if connection.vendor != "postgresql":
            return None
        watermark = _watermark()
        return cls(watermark) if watermark > 0 else None

    def _unsummarized(self):
        # W as of the statement (the summary rows beside it are of the same snapshot); never below the W
        # read above, which the planner sees as a constant and so reads the newest events by the primary key.
        return f"id > %s AND id > (SELECT coalesce(max(watermark), 0) FROM {STATE})", [self.watermark]

    def per_customer(self, field, since, op=None, bound=None):
        """RawSQL of the customers with a purchase since `since` whose count or spend compares with bound
        (every customer with a purchase when op is None), as the events' GROUP BY customer_id gives it."""
        edge_day, next_day = _edge(since)
        newer, newer_params = self._unsummarized()
        having = "SUM(n) > 0"
        params = [edge_day, EventType.PURCHASE, since, next_day, EventType.PURCHASE, next_day, *newer_params]
        if op is not None:
            having += f" AND {MEASURES[field]} {OPERATORS[op]} %s"
            params.append(bound)
        sql = (
            f"SELECT customer_id FROM (SELECT customer_id, n, nv, spend FROM {SUMMARY} WHERE day > %s "
            "UNION ALL SELECT customer_id, 1, (value IS NOT NULL)::int, coalesce(value, 0) "
            f"FROM {EVENTS} WHERE type = %s AND occurred_at >= %s AND occurred_at < %s "
            "UNION ALL SELECT customer_id, 1, (value IS NOT NULL)::int, coalesce(value, 0) "
            f"FROM {EVENTS} WHERE type = %s AND occurred_at >= %s AND {newer}) AS purchases "
            f"GROUP BY customer_id HAVING {having}"
        )
        return RawSQL(sql, params)

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
