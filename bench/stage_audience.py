"""Scale stage: the audience count for behaviour rules over all the shop's events (campaigns.audiences).

First the per-customer purchase summary the purchase rules read (campaigns/purchase_summary.py) is emptied
and refreshed from all the shop's events, as after a first import (a row of its own), then refreshed again
with nothing new (what the periodic refresh costs when idle). Then it counts four rule sets with
``audience_count`` (what the rule builder's live count calls), each the median of 3 after a first run with
the shop's clock not cached (that first run is a row too). The reference of each is one count of the same
rules over the raw events (``audience_query(rules, summary=False)``, as before the summary); the stage
fails if the two counts differ. It prints the query plans of the two costliest rule sets (EXPLAIN ANALYZE,
with the count's settings) so a slow count can be read.
"""

from __future__ import annotations

import statistics
import time

GOAL_S = 2.0
DAIRY_30 = {"field": "bought_category", "op": "yes", "value": "Dairy", "days": 30}
FREQUENT_90 = {"field": "frequency", "op": "gte", "value": 3, "days": 90}
LAPSED = "lapsed big spenders (spent >= 100 in 365 days, nothing in the last 60)"
RULES = {
    "bought Dairy in 30 days": {"match": "all", "rules": [DAIRY_30]},
    ">= 3 purchases in 90 days": {"match": "all", "rules": [FREQUENT_90]},
    "both of the above": {"match": "all", "rules": [FREQUENT_90, DAIRY_30]},
    LAPSED: {
        "match": "all",
        "rules": [
            {"field": "monetary", "op": "gte", "value": 100, "days": 365},
            {"field": "recency_days", "op": "gte", "value": 60},
        ],
    },
}


def measure(*, database_url: str, scale: float) -> list[dict]:
    from django.core.cache import cache

    from campaigns.audiences import audience_count

    rows = _refresh_rows()
    for label, rules in RULES.items():
        cache.delete("shop-clock")
        started = time.perf_counter()
        counts = audience_count(rules, timeout_ms=600_000)
        cold_s = time.perf_counter() - started
        times = []
        for _ in range(3):
            started = time.perf_counter()
            audience_count(rules, timeout_ms=600_000)
            times.append(time.perf_counter() - started)
        raw_s, raw_total = _raw_count(rules)
        if raw_total != counts["total"]:
            raise AssertionError(f"{label}: {counts['total']:,} from the summary, {raw_total:,} from the events")
        name = f"audience count: {label}, {counts['total']:,} customers (reference: the raw events, same count)"
        rows.append(_row(name, statistics.median(times), reference=round(raw_s, 2)))
        rows.append(_row(f"audience count, shop clock not cached: {label}", cold_s))
    for label in ("both of the above", LAPSED):
        _explain(label)
    return rows


def _refresh_rows():
    from django.db import connection

    from campaigns.models import PurchaseDay, PurchaseTotal
    from campaigns.purchase_summary import summary_refresh

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {PurchaseDay._meta.db_table}, {PurchaseTotal._meta.db_table}")
        cursor.execute("UPDATE campaigns_audiencesummary SET watermark = 0, refreshed_at = NULL")
    started = time.perf_counter()
    first = summary_refresh()
    first_s = time.perf_counter() - started
    started = time.perf_counter()
    summary_refresh()
    idle_s = time.perf_counter() - started
    days = PurchaseDay.objects.count()
    name = (
        f"purchase summary: refresh of all events (ids up to {first.watermark:,}; {days:,} customer-days, "
        f"{first.chunks} chunks, VACUUM ANALYZE)"
    )
    return [
        {"name": name, "value": first_s, "unit": "s", "goal": None, "reference": None},
        {
            "name": "purchase summary: refresh with nothing new",
            "value": idle_s,
            "unit": "s",
            "goal": None,
            "reference": None,
        },
    ]


def _raw_count(rules):
    from django.db import connection, transaction

    from campaigns.audiences import COUNT_WORK_MEM, audience_query

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SET LOCAL work_mem = '{COUNT_WORK_MEM}'")
        cursor.execute("SET LOCAL enable_nestloop = off")
        total = audience_query(rules, summary=False).count()
    return time.perf_counter() - started, total


def _explain(label):
    from django.db import connection, transaction

    from campaigns.audiences import COUNT_WORK_MEM, audience_query

    sql, params = audience_query(RULES[label]).values("id").order_by().query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SET LOCAL work_mem = '{COUNT_WORK_MEM}'")
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute("SET LOCAL enable_hashagg = off")  # as audience_count sets them over the summary
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) q", params)
        print(f"--- plan: {label}")
        print("\n".join(line for (line,) in cursor.fetchall()), flush=True)


def _row(name, seconds, reference=None):
    return {"name": name, "value": seconds, "unit": "s", "goal": f"< {GOAL_S}", "reference": reference}
