"""Scale stage: the file import and the events API into the large shop, as bench/ingest.py measures them.

1. File import: ``events_import_file`` (what ``import_events`` and an upload call) of a Parquet file of
   new purchases by the shop's customers of its items, 1,470,000 rows at scale 1 (the size of the
   Complete Journey's file that bench/ingest.py imports into an empty table), into the events table as
   the synthetic shop left it (20M rows and their indexes at scale 1).
2. Events API: bench/ingest.py's 4 gunicorn clients posting batches of 1,000 view events of the shop's
   customers and items, into the same table.

The goals are the foundation benchmark's (1.47M rows in under 15 s, so at least 98,000 rows a second;
more than 10,000 API events a second), here with the large table's indexes to maintain.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

FILE_ROWS = 1_470_000
GOAL_FILE_ROWS_PER_S, GOAL_API_EVENTS_PER_S = 98_000, 10_000


def measure(*, database_url: str, scale: float) -> list[dict]:
    import pandas as pd
    from ingest import MAPPING, bench_api, timed_import

    from shop.models import Customer, Item

    n_customers, n_items = Customer.objects.count(), Item.objects.count()
    rows = max(1000, round(FILE_ROWS * scale))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "household_id": np.char.add("c", rng.integers(1, n_customers + 1, rows).astype(str)),
            "product_id": np.char.add("i", rng.integers(1, n_items + 1, rows).astype(str)),
            # Times end at this second, so a second run imports new events, not duplicates of the first.
            "transaction_timestamp": pd.Timestamp.now(tz="UTC").floor("s")
            - pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"),
            "quantity": rng.integers(1, 4, rows),
            "sales_value": np.round(rng.uniform(0.5, 30, rows), 2),
        }
    )
    assert set(MAPPING.values()) == set(frame.columns)
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "purchases.parquet"
        frame.to_parquet(parquet, index=False)
        summary, seconds = timed_import(parquet, source="bench-scale-file")
    # Event ids of this run's own (a prefix from the clock): a second run on a kept shop stores new events
    # instead of finding every id of the first run already there (0 stored, 0 events/s).
    prefix = f"r{time.time_ns() // 1_000_000}-"
    api = bench_api(10 if scale >= 0.1 else 5, empty_first=False, customers=n_customers, items=n_items, prefix=prefix)
    return [
        {"name": f"file import into the large shop: {rows:,} rows in {seconds:.1f} s ({summary.rows_stored:,} "
         f"stored, {summary.rows_duplicate:,} duplicates)", "value": rows / seconds, "unit": "rows/s",
         "goal": f">= {GOAL_FILE_ROWS_PER_S}", "reference": None},
        {"name": f"events API into the large shop: {api['clients']} clients x batches of {api['batch']}, "
         f"{api['events']:,} events", "value": api["events_per_s"], "unit": "events/s",
         "goal": f">= {GOAL_API_EVENTS_PER_S}", "reference": None},
    ]  # fmt: skip
