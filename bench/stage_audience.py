"""Scale stage: the audience count for behaviour rules over all the shop's events (campaigns.audiences).

Counts four rule sets with ``audience_count`` (what the rule builder's live count calls), each the median
of 3 after a first run with the shop's clock not cached (that first run is a row too), and prints the
query plan of the combined one (EXPLAIN ANALYZE, with the count's settings) so a slow count can be read.
"""

from __future__ import annotations

import statistics
import time

GOAL_S = 2.0
DAIRY_30 = {"field": "bought_category", "op": "yes", "value": "Dairy", "days": 30}
FREQUENT_90 = {"field": "frequency", "op": "gte", "value": 3, "days": 90}
RULES = {
    "bought Dairy in 30 days": {"match": "all", "rules": [DAIRY_30]},
    ">= 3 purchases in 90 days": {"match": "all", "rules": [FREQUENT_90]},
    "both of the above": {"match": "all", "rules": [FREQUENT_90, DAIRY_30]},
    "lapsed big spenders (spent >= 100 in 365 days, nothing in the last 60)": {
        "match": "all",
        "rules": [
            {"field": "monetary", "op": "gte", "value": 100, "days": 365},
            {"field": "recency_days", "op": "gte", "value": 60},
        ],
    },
}


def measure(*, database_url: str, scale: float) -> list[dict]:
    from django.core.cache import cache
    from django.db import connection, transaction

    from campaigns.audiences import COUNT_WORK_MEM, audience_count, audience_query

    rows = []
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
        rows.append(_row(f"audience count: {label}, {counts['total']:,} customers", statistics.median(times)))
        rows.append(_row(f"audience count, shop clock not cached: {label}", cold_s))
    sql, params = audience_query(RULES["both of the above"]).values("id").order_by().query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(f"SET LOCAL work_mem = '{COUNT_WORK_MEM}'")
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM ({sql}) q", params)
        print("\n".join(line for (line,) in cursor.fetchall()), flush=True)
    return rows


def _row(name, seconds):
    return {"name": name, "value": seconds, "unit": "s", "goal": f"< {GOAL_S}", "reference": None}
