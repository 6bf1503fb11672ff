"""Scale stage: top-20 of every item for every customer through recommender.ml.ranking, beside a plain matmul.

A 64-dimensional embedding model (customer and item matrices, float32, seeded) scores each chunk of
customers as U[chunk] @ V.T; the product's loop (``ranking.scored_chunks`` and ``ScoredChunk.top``) hides
what each customer already bought (their purchases in the synthetic shop, as sparse index lists) and takes
the top 20. The reference is the same matmul chunk by chunk with nothing else (the compute floor).

``BENCH_SCORING_CUSTOMERS=N`` scores the first N customers only (both sides), and the rows give the time
for all customers extrapolated linearly, stated as such: every chunk costs the same.
"""

from __future__ import annotations

import os
import resource
import time

import numpy as np
import psycopg

DIM, K, SEED = 64, 20, 0
GOAL_RATIO, GOAL_PEAK_GIB = 2.0, 4.0


def measure(*, database_url: str, scale: float) -> list[dict]:
    from recommender.ml.ranking import CHUNK, SparseMask, scored_chunks

    indptr, items, n_items = purchased_lists(database_url)
    n_customers = len(indptr) - 1
    n_scored = min(n_customers, int(os.environ.get("BENCH_SCORING_CUSTOMERS") or n_customers))
    rng = np.random.default_rng(SEED)
    users = rng.standard_normal((n_customers, DIM), dtype=np.float32)
    item_factors = rng.standard_normal((n_items, DIM), dtype=np.float32)
    rss_before = _peak_rss_gib()

    started = time.perf_counter()
    for start in range(0, n_scored, CHUNK):
        users[start : start + CHUNK] @ item_factors.T
    floor_s = time.perf_counter() - started

    def chunks():
        for start in range(0, n_scored, CHUNK):
            rows = np.arange(start, min(start + CHUNK, n_scored))
            yield slice(rows[0], rows[-1] + 1), rows, {}

    def score(rows):
        return users[rows] @ item_factors.T

    def hide(key, rows, n_columns):
        lengths = np.diff(indptr[key.start : key.stop + 1])
        bought = items[indptr[key.start] : indptr[key.stop]]
        return SparseMask(np.repeat(np.arange(len(rows)), lengths), bought, (len(rows), n_columns))

    top_items = np.empty((n_scored, K), dtype=np.int32)
    started = time.perf_counter()
    for chunk in scored_chunks(score, chunks(), hide):
        top_items[chunk.key] = chunk.top(K)[0]
    ranking_s = time.perf_counter() - started
    _check_no_bought_item(top_items, indptr, items)
    peak = _peak_rss_gib()

    extrapolate = n_customers / n_scored
    note = "" if n_scored == n_customers else f" ({n_scored:,} of {n_customers:,} scored, extrapolated)"
    shape = f"{n_customers:,} x {n_items:,} x {DIM}"
    return [
        _row(f"scoring: top-{K} with bought items hidden, {shape}{note}", ranking_s * extrapolate, "s",
             None, floor_s * extrapolate),
        _row("scoring: time / matmul floor", ranking_s / floor_s, "x", f"<= {GOAL_RATIO}", floor_s * extrapolate),
        _row("scoring: peak memory (whole process)", peak, "GiB", f"<= {GOAL_PEAK_GIB}", rss_before),
        _row("scoring: customers ranked a second", n_scored / ranking_s, "customers/s", None,
             n_scored / floor_s),
    ]  # fmt: skip


COPY_ROW = np.dtype([("n", ">i2"), ("l1", ">i4"), ("customer", ">i4"), ("l2", ">i4"), ("item", ">i4")])


def purchased_lists(database_url):
    """(indptr, items, n_items): each customer's purchased item columns as CSR arrays, read by binary COPY.

    The COPY is parsed as it streams, so the peak is the arrays, not the whole payload (360 MB at 20M rows).
    """
    with psycopg.connect(database_url) as conn:
        first_customer, n_customers = conn.execute("SELECT min(id), count(*) FROM shop_customer").fetchone()
        first_item, n_items = conn.execute("SELECT min(id), count(*) FROM shop_item").fetchone()
        query = f"""COPY (SELECT (customer_id - {int(first_customer)})::int4, (item_id - {int(first_item)})::int4
                          FROM shop_event WHERE type = 'purchase' AND item_id IS NOT NULL) TO STDOUT (FORMAT binary)"""
        customers, items = _parse_copy(conn, query)
    order = np.argsort(customers, kind="stable")
    indptr = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(np.bincount(customers, minlength=n_customers), out=indptr[1:])
    return indptr, items[order], int(n_items)


def _parse_copy(conn, query, piece=1 << 25):
    # Binary COPY: a 19-byte header, then per row a 2-byte field count and (4-byte length, value) per field
    # (18 bytes for two int4), then a 2-byte trailer (a field count of -1).
    customers, items, buffer, header = [], [], bytearray(), True
    with conn.cursor().copy(query) as copy:
        for block in copy:
            buffer += block
            if header and len(buffer) >= 19:
                del buffer[:19]
                header = False
            if len(buffer) >= piece:
                _take_rows(buffer, customers, items)
    del buffer[-2:]  # the trailer
    _take_rows(buffer, customers, items)
    return np.concatenate(customers), np.concatenate(items)


def _take_rows(buffer, customers, items):
    n = len(buffer) // COPY_ROW.itemsize
    rows = np.frombuffer(bytes(buffer[: n * COPY_ROW.itemsize]), dtype=COPY_ROW)
    customers.append(rows["customer"].astype(np.int32))
    items.append(rows["item"].astype(np.int32))
    del buffer[: n * COPY_ROW.itemsize]


def _check_no_bought_item(top_items, indptr, items):
    """The mask took: no customer of a sample is recommended an item they bought."""
    for customer in range(0, len(top_items), max(1, len(top_items) // 200)):
        bought = items[indptr[customer] : indptr[customer + 1]]
        if np.isin(top_items[customer], bought).any():
            raise AssertionError(f"customer row {customer} was recommended an item it bought")


def _peak_rss_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def _row(name, value, unit, goal, reference):
    return {"name": name, "value": value, "unit": unit, "goal": goal, "reference": reference}
