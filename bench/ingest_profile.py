"""Where the time of bench/stage_ingestion.py's file import goes: wall seconds summed per step (diagnostic).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/part_s1 nice python bench/ingest_profile.py --json OUT

Imports, into the shop the URL names, a month's export of the month after its newest event (the stage's file:
1,470,000 rows) and sums the wall time of each step. The writer's steps (resolving ids, CSV, COPY) run on its
thread while the row checker runs on the caller's, so the sums overlap and add up to more than the total.
"""

import argparse
import collections
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "bench"), str(REPO)]
STEPS = (
    ("event_store", "month_load_finish", "finish: keys, indexes and ATTACH of the new month (server)"),
    ("event_store", "_copy", "COPY into the month's table (server)"),
    ("event_store", "_csv_payload", "CSV payload (Arrow)"),
    ("writer", "_resolve", "resolving customer and item ids (writer thread)"),
    ("checker", "check", "row checker (caller's thread)"),
)


def timed(owner, name, label, spent):
    original = getattr(owner, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[label] += time.perf_counter() - started

    setattr(owner, name, wrapper)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_470_000)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    os.environ.setdefault("DEBUG", "1")
    import django

    django.setup()
    import numpy as np
    import pandas as pd
    from ingest import timed_import
    from stage_ingestion import file_times

    from shop.models import Customer, Item
    from shop.services import event_rows, event_store

    owners = {"event_store": event_store, "writer": event_store.PostgresEventWriter, "checker": event_rows.RowChecker}
    spent = collections.Counter()
    for owner, name, label in STEPS:
        timed(owners[owner], name, label, spent)
    customers, items, rng = Customer.objects.count(), Item.objects.count(), np.random.default_rng(1)
    times, label = file_times("next-month", args.rows, rng)
    frame = pd.DataFrame(
        {
            "household_id": np.char.add("c", rng.integers(1, customers + 1, args.rows).astype(str)),
            "product_id": np.char.add("i", rng.integers(1, items + 1, args.rows).astype(str)),
            "transaction_timestamp": times,
            "quantity": rng.integers(1, 4, args.rows),
            "sales_value": np.round(rng.uniform(0.5, 30, args.rows), 2),
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.parquet"
        frame.to_parquet(path, index=False)
        summary, seconds = timed_import(path, source=f"profile-{time.time_ns()}")
    result = {"file": label, "rows": args.rows, "stored": summary.rows_stored, "seconds": round(seconds, 1),
              "rows_per_s": round(args.rows / seconds), "load_average": os.getloadavg(),
              "steps_s": {k: round(v, 1) for k, v in spent.most_common()}}  # fmt: skip
    print(json.dumps(result, indent=2))
    args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
