"""Scale stage: the file import and the events API into the large shop, as bench/ingest.py measures them.

1. File import: ``events_import_file`` (what ``import_events`` and an upload call) of a Parquet file of
   new purchases by the shop's customers of its items, 1,470,000 rows at scale 1 (the size of the
   Complete Journey's file that bench/ingest.py imports into an empty table), into the events table as
   the synthetic shop left it (20M rows and their indexes at scale 1). The file is what a shop imports:
   a month's export, of the calendar month after the shop's newest event (so a month that has no rows
   yet: on a partitioned table, shop migration 0008, it takes the per-month first load). Its dates lie
   in the future of a shop whose events end now: the stage admits them (EVENT_MAX_FUTURE_DAYS). With
   ``BENCH_INGESTION_FILE=last-day`` (``run.py --ingestion-file last-day``) the file is the one measured
   before: times spread over the day that ends now, a month the table already holds.
2. Events API: bench/ingest.py's 4 gunicorn clients posting batches of 1,000 view events of the shop's
   customers and items, into the same table, the server with production's settings (DEBUG off;
   ``BENCH_API_DEBUG=1``: development's, as measured before 2026-12-03).

The goals are the foundation benchmark's (1.47M rows in under 15 s, so at least 98,000 rows a second;
more than 10,000 API events a second), here with the large table's indexes to maintain.
"""

from __future__ import annotations

import os
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
    kind = os.environ.get("BENCH_INGESTION_FILE", "next-month")
    times, label = file_times(kind, rows, rng)
    frame = pd.DataFrame(
        {
            "household_id": np.char.add("c", rng.integers(1, n_customers + 1, rows).astype(str)),
            "product_id": np.char.add("i", rng.integers(1, n_items + 1, rows).astype(str)),
            "transaction_timestamp": times,
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
    debug = os.environ.get("BENCH_API_DEBUG") == "1"  # development's settings on the server, as before 2026-12-03
    api = bench_api(
        10 if scale >= 0.1 else 5, empty_first=False, customers=n_customers, items=n_items, prefix=prefix, debug=debug
    )
    return [
        {"name": f"file import into the large shop ({label}): {rows:,} rows in {seconds:.1f} s "
         f"({summary.rows_stored:,} stored, {summary.rows_duplicate:,} duplicates)", "value": rows / seconds,
         "unit": "rows/s",
         "goal": f">= {GOAL_FILE_ROWS_PER_S}", "reference": None},
        {"name": f"events API into the large shop: {api['clients']} clients x batches of {api['batch']}, "
         f"{api['events']:,} events{' (DEBUG on)' if debug else ''}", "value": api["events_per_s"], "unit": "events/s",
         "goal": f">= {GOAL_API_EVENTS_PER_S}", "reference": None},
    ]  # fmt: skip


def file_times(kind, rows, rng):
    """The file's times and how the row names them: a month after the shop's newest event, or its last day."""
    import pandas as pd
    from django.conf import settings
    from django.db.models import Max

    from shop.models import Event

    if kind == "last-day":
        # Times end at this second, so a second run imports new events, not duplicates of the first.
        end = pd.Timestamp.now(tz="UTC").floor("s")
        return end - pd.to_timedelta(rng.integers(0, 86_400, rows), unit="s"), "the day that ends now"
    if kind != "next-month":
        raise SystemExit(f"BENCH_INGESTION_FILE must be next-month or last-day, not {kind!r}")
    newest = pd.Timestamp(Event.objects.aggregate(newest=Max("occurred_at"))["newest"]).tz_convert("UTC")
    start = (newest.tz_localize(None).to_period("M") + 1).to_timestamp().tz_localize("UTC")
    seconds = int((start + pd.offsets.MonthBegin(1) - start).total_seconds())
    # A second run on a kept shop imports the month after this one: new events again.
    settings.EVENT_MAX_FUTURE_DAYS = (start - pd.Timestamp.now(tz="UTC")).days + 33
    times = start + pd.to_timedelta(np.sort(rng.integers(0, seconds, rows)), unit="s")
    return times, f"a month's export, {start:%Y-%m}"
