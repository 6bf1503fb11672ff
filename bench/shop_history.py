"""The dashboard's section on the shop's own past campaigns, at the Complete Journey's size.

    python bench/shop_history.py --json bench/out/shop_history.json

Fills a database of its own (promo_site_bench_shop_history) with SQL generate_series: 2,500 households,
1,470,000 purchases over 711 days in time order (as an append-mostly table holds them), 30 campaigns of
41 days each targeting 3% to 33% of the households, and 2,300 coupon redemptions. Then it times
`shop_history_rows()` with an empty cache and again cached (median of 3 each), and prints and writes them.
The events table is vacuumed first, as autovacuum would, so that its BRIN index on time is summarised.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH_DB = "promo_site_bench_shop_history"
BASE_URL = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
os.environ["DATABASE_URL"] = f"{BASE_URL}/{BENCH_DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.core.cache import cache  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
from ingest import machine  # noqa: E402

FILL = [
    """INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
           consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at, updated_at)
       SELECT 'h' || g, '', '', '{}', '{}', false, '', false, '', 'UTC', false, now(), now()
       FROM generate_series(1, 2500) g""",
    """INSERT INTO shop_item (external_id, title, category_path, brand, active, in_stock, image_url, attributes,
           is_stub, created_at, updated_at, price)
       SELECT 'p' || g, '', 'A > B', '', true, true, '', '{}', false, now(), now(), 2.5
       FROM generate_series(1, 5000) g""",
    """INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
           client_event_id, received_at)
       SELECT (SELECT MIN(id) FROM shop_customer) + (g::bigint * 7919) % 2500,
              (SELECT MIN(id) FROM shop_item) + g % 5000, 'purchase', 1, 2.5, 0,
              timestamp '2016-01-01' + (g / 2070) * interval '1 day' + (g % 86400) * interval '1 second',
              'completejourney', 'e' || g, now()
       FROM generate_series(1, 1470000) g""",
    """INSERT INTO shop_externalcampaign (source, external_id, campaign_type, start_date, end_date)
       SELECT 'completejourney', g::text, 'Type A', date '2016-01-01' + g * 20, date '2016-01-01' + g * 20 + 40
       FROM generate_series(1, 30) g""",
    """INSERT INTO shop_externalcampaign_targeted (externalcampaign_id, customer_id)
       SELECT c.id, cu.id FROM shop_externalcampaign c JOIN shop_customer cu ON (cu.id % 30) < (c.id % 10) + 1""",
    """INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
           client_event_id, received_at, attributes)
       SELECT (SELECT MIN(id) FROM shop_customer) + g % 2500, NULL, 'coupon_redemption', 1, NULL, 0,
              timestamp '2016-03-01' + (g % 600) * interval '1 day', 'completejourney', 'r' || g, now(),
              jsonb_build_object('campaign_id', 1 + g % 30)
       FROM generate_series(1, 2300) g""",
]


def reset_database():
    with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    connection.close()
    call_command("migrate", verbosity=0)


def timed(function):
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from campaigns.dashboard.shop_history import shop_history_rows

    reset_database()
    with connection.cursor() as cursor:
        for statement in FILL:
            cursor.execute(statement)
        # As autovacuum leaves it (and as a first import's index build does): the BRIN index on occurred_at
        # summarised. Unsummarised ranges are always read, so every window would scan the whole table.
        cursor.execute("VACUUM ANALYZE shop_event")
    uncached, cached = [], []
    for _ in range(3):
        cache.clear()
        uncached.append(timed(shop_history_rows))
        cached.append(timed(shop_history_rows))
    cache.clear()
    result = {
        "machine": machine(),
        "campaigns": len(shop_history_rows()),
        "uncached_seconds": round(statistics.median(uncached), 3),
        "cached_seconds": round(statistics.median(cached), 4),
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
