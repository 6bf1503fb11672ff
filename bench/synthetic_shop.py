"""A deterministic synthetic shop of any size, filled by SQL in minutes: the scale benchmark's data.

    python bench/synthetic_shop.py --scale 0.1 --database-url postgres://postgres@127.0.0.1:5432/promo_site_bench_scale

At scale 1: 1,000,000 customers (all contactable, e-mail addresses on example.test, age band, income band
and household size), 100,000 items (20 departments of 10 aisles, 500 brands, prices and costs, a long-tail
popularity: an item of rank r is drawn with probability about proportional to r^-0.8, so the first 1% of
items take about a third of the lines and the top item 2%), and about 20,000,000 purchase events in about
4,000,000 orders (1 to 9 lines each, ``Event.order_id``) spread evenly over the year that ends now and
stored in time order, as a live shop appends them. Each customer has
three favourite items; 60% of lines buy one of them, so about 40% of all lines repeat an item the customer
bought in an earlier order (``repeat_share`` measures it on 1% of customers). A customer's order count is
skewed: every customer has one order at some time in the year, and the rest go mostly to low ids.

Everything is drawn by PostgreSQL's ``hashint8extended`` of a row's number and the seed, not by ``random()``,
so a build is the same row for row at any time, with any plan, except the dates, which end at the build's
hour. It is filled with ``INSERT ... SELECT generate_series`` (no ORM, no round trips) with the events
table's indexes dropped and built again after the load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

REPO = Path(__file__).resolve().parent.parent

CUSTOMERS, ITEMS, ORDERS = 1_000_000, 100_000, 4_000_000  # at scale 1; lines per order average 5
FAVOURITES = 3  # favourite items per customer
REPEAT_SHARE = 0.6  # share of lines that buy one of the customer's favourites
ORDER_CHUNK = 500_000  # orders per INSERT: about 2.5M events, so progress shows every half-minute or so
DEPARTMENTS = (
    "Produce", "Dairy", "Bakery", "Meat", "Seafood", "Frozen", "Pantry", "Snacks", "Beverages", "Household",
    "Personal care", "Baby", "Pets", "Deli", "Breakfast", "International", "Health", "Wine & beer", "Garden",
    "Kitchen",
)  # fmt: skip


def sizes(scale: float) -> dict:
    """Customers, items and orders at ``scale`` (scale 1: 1M, 100k, 4M; at least 10, 10 and 10)."""
    if not scale > 0:
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    return {
        "customers": max(10, round(CUSTOMERS * scale)),
        "items": max(10, round(ITEMS * scale)),
        "orders": max(10, round(ORDERS * scale)),
    }


def build(database_url: str, scale: float, seed: int = 0, *, log=None) -> dict:
    """Create the database at ``database_url`` afresh (drop, create, migrate) and fill the synthetic shop.

    Returns the counts (customers, items, orders, events), the share of repeat lines in a 1% sample of
    customers and the seconds each phase took.
    """
    n = sizes(scale)
    log = log or (lambda line: print(line, flush=True))
    seconds = {}
    started = time.perf_counter()
    database_recreate(database_url)
    migrate(database_url)
    seconds["create_and_migrate"] = _since(started)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        _create_draw_functions(conn, seed)
        for phase, fill in (("customers", fill_customers), ("items", fill_items), ("events", fill_events)):
            phase_started = time.perf_counter()
            fill(conn, n, log=log)
            seconds[phase] = _since(phase_started)
            log(f"  {phase}: {seconds[phase]} s")
        phase_started = time.perf_counter()
        for table in ("shop_customer", "shop_item", "shop_event"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
        seconds["vacuum_analyze"] = _since(phase_started)
        counts = _counts(conn)
        counts["repeat_share_sample"] = repeat_share(conn)
        conn.execute("DROP FUNCTION bench_u(bigint, integer)")
        conn.execute("DROP FUNCTION bench_zipf(double precision, bigint)")
    seconds["total"] = _since(started)
    return {"scale": scale, "seed": seed, **counts, "seconds": seconds}


def database_recreate(database_url: str) -> None:
    name = conninfo_to_dict(database_url).get("dbname")
    if not name or name in ("postgres", "template0", "template1"):
        raise ValueError(f"--database-url must name a database of its own to drop and create, got {name!r}")
    with psycopg.connect(make_conninfo(database_url, dbname="postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def migrate(database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "DEBUG": os.environ.get("DEBUG", "1")}
    subprocess.run([sys.executable, str(REPO / "manage.py"), "migrate", "-v0"], env=env, check=True, cwd=REPO)


def _create_draw_functions(conn, seed):
    # bench_u(x, salt): a uniform draw in [0, 1) from a row's number; bench_zipf(u, n): a rank in 1..n with
    # P(rank <= r) = ((r + 1)^0.2 - 1) / ((n + 1)^0.2 - 1), a density about proportional to r^-0.8 (Zipf,
    # exponent 0.8). SQL functions, so the planner inlines them.
    conn.execute(
        f"""CREATE FUNCTION bench_u(x bigint, salt integer) RETURNS double precision
            LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT (hashint8extended(x, {int(seed)} * 1000 + salt) & 2147483647)::float8 / 2147483648.0 $$"""
    )
    conn.execute(
        """CREATE FUNCTION bench_zipf(u double precision, n bigint) RETURNS bigint
           LANGUAGE sql IMMUTABLE PARALLEL SAFE
           AS $$ SELECT least(n, greatest(1, floor((u * (power(n + 1, 0.2) - 1) + 1) ^ 5)::bigint)) $$"""
    )


def fill_customers(conn, n, *, log):
    with _indexes_dropped(conn, "shop_customer"):
        conn.execute(
            """INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
                   consent_at, consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at,
                   updated_at)
               SELECT 'c' || g, 'customer' || g || '@example.test', 'Customer ' || g, '{}',
                   jsonb_build_object(
                       'age_band',
                       (ARRAY['19-24','25-34','35-44','45-54','55-64','65+'])[1 + floor(bench_u(g, 11) * 6)::int],
                       'income_band', (ARRAY['low','middle','high'])[1 + floor(bench_u(g, 12) * 3)::int],
                       'household_size', 1 + floor(bench_u(g, 13) * 5)::int),
                   true, now() - interval '2 years', 'synthetic', false, '', 'UTC', false, now(), now()
               FROM generate_series(1, %s) g""",
            [n["customers"]],
        )  # fmt: skip


def fill_items(conn, n, *, log):
    departments = list(DEPARTMENTS)
    with _indexes_dropped(conn, "shop_item"):
        conn.execute(
            """INSERT INTO shop_item (external_id, title, category_path, brand, price, cost, active, in_stock,
                   image_url, attributes, is_stub, created_at, updated_at)
               SELECT 'i' || r, 'Item ' || r,
                   (%(departments)s::text[])[1 + r %% 20] || ' > Aisle ' || (1 + (r / 20) %% 10),
                   'Brand ' || (1 + floor(bench_u(r, 21) * 500)::int),
                   round((0.5 + 30 * bench_u(r, 22) ^ 2)::numeric, 2),
                   round(((0.5 + 30 * bench_u(r, 22) ^ 2) * (0.55 + 0.25 * bench_u(r, 23)))::numeric, 2),
                   true, true, '', '{}', false, now(), now()
               FROM generate_series(1, %(items)s) r""",
            {"departments": departments, "items": n["items"]},
        )


def fill_events(conn, n, *, log):
    first_customer = conn.execute("SELECT min(id) FROM shop_customer").fetchone()[0]
    first_item = conn.execute("SELECT min(id) FROM shop_item").fetchone()[0]
    started = time.perf_counter()
    _month_partitions(conn)
    with _indexes_dropped(conn, "shop_event"):
        for start in range(1, n["orders"] + 1, ORDER_CHUNK):
            stop = min(n["orders"], start + ORDER_CHUNK - 1)
            _insert_orders(conn, start, stop, n, first_customer, first_item)
            log(f"    orders {start:,}..{stop:,} of {n['orders']:,} ({_since(started)} s)")
        log("    building the events table's indexes")


def _month_partitions(conn):
    """The year's monthly partitions, as the event writers would have created them (shop migration 0008;
    on an events table that is not partitioned, nothing)."""
    if conn.execute("SELECT relkind FROM pg_class WHERE oid = 'shop_event'::regclass").fetchone()[0] != "p":
        return
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(
        """DO $$ DECLARE m timestamptz; BEGIN
           FOR m IN SELECT generate_series(date_trunc('month', now() - interval '366 days'),
                                           date_trunc('month', now()), interval '1 month') LOOP
               EXECUTE format('CREATE TABLE %I PARTITION OF shop_event FOR VALUES FROM (%L) TO (%L)',
                              'shop_event_y' || to_char(m, 'YYYY') || 'm' || to_char(m, 'MM'),
                              m, m + interval '1 month');
           END LOOP; END $$"""
    )


def _insert_orders(conn, start, stop, n, first_customer, first_item):
    # Orders are numbered in time, so the table is appended in time order as a live shop's is (the BRIN
    # index on occurred_at then works). Order o belongs to customer (o * STRIDE mod O) + 1 when that is at
    # most C: a permutation, so every customer has exactly one such order, spread over the year; the other
    # orders skew to low ids. A line buys one of its customer's favourites with probability REPEAT_SHARE,
    # else a Zipf draw.
    conn.execute(
        """INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
               client_event_id, order_id, received_at)
           SELECT lines.customer_id, i.id, 'purchase', lines.quantity, i.price * lines.quantity, 0,
               lines.occurred_at, 'synthetic', lines.o || '-' || lines.l, 'o' || lines.o, lines.occurred_at
           FROM (
               SELECT orders.o, l, orders.customer_id, orders.occurred_at,
                   1 + (bench_u(orders.o * 16 + l, 31) < 0.2)::int AS quantity,
                   %(first_item)s - 1 + CASE
                       WHEN bench_u(orders.o * 16 + l, 32) < %(repeat)s THEN bench_zipf(bench_u(
                           (orders.customer_id - %(first_customer)s) * 8
                               + floor(bench_u(orders.o * 16 + l, 33) * %(favourites)s)::int,
                           34), %(items)s)
                       ELSE bench_zipf(bench_u(orders.o * 16 + l, 35), %(items)s)
                   END AS item_id
               FROM (
                   SELECT o, %(first_customer)s - 1 + CASE
                           WHEN (o * %(stride)s) %% %(orders)s < %(customers)s THEN (o * %(stride)s) %% %(orders)s + 1
                           ELSE 1 + floor(%(customers)s * bench_u(o, 1) ^ 1.5)::bigint
                       END AS customer_id,
                       date_trunc('hour', now()) - interval '365 days'
                           + interval '365 days' * ((o - 1 + bench_u(o, 2)) / %(orders)s) AS occurred_at
                   FROM generate_series(%(start)s::bigint, %(stop)s::bigint) o
               ) orders
               CROSS JOIN LATERAL generate_series(1, 1 + floor(bench_u(orders.o, 4) * 9)::int) l
           ) lines
           JOIN shop_item i ON i.id = lines.item_id
           ORDER BY lines.o, lines.l""",
        {
            "start": start, "stop": stop, "customers": n["customers"], "items": n["items"],
            "orders": n["orders"], "stride": _stride(n["orders"]), "first_customer": first_customer,
            "first_item": first_item, "repeat": REPEAT_SHARE, "favourites": FAVOURITES,
        },
    )  # fmt: skip


def _stride(orders):
    """A prime that does not divide the order count, so o -> o * stride mod orders is a permutation."""
    return next(p for p in (1_000_003, 1_000_033, 1_000_037) if orders % p)


@contextmanager
def _indexes_dropped(conn, table):
    """Drop ``table``'s indexes and unique constraints but its primary key, and build them again after."""
    constraints = conn.execute(
        """SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
           WHERE conrelid = %s::regclass AND contype = 'u'""",
        [table],
    ).fetchall()
    indexes = conn.execute(
        """SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
           WHERE x.indrelid = %s::regclass AND NOT x.indisprimary
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid)""",
        [table],
    ).fetchall()
    for name, _definition in constraints:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    yield
    for name, definition in constraints:
        conn.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _name, definition in indexes:
        # A partitioned table's index reads "ON ONLY table": run as it is, it would build the parent's index
        # alone, INVALID, and none on the partitions. Without ONLY it is built on every partition.
        conn.execute(definition.replace(" ON ONLY ", " ON ", 1))
    invalid = conn.execute(
        """SELECT string_agg(indexrelid::regclass::text, ', ') FROM pg_index
           WHERE NOT indisvalid AND indrelid IN (SELECT %s::regclass UNION ALL
               SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)""",
        [table, table],
    ).fetchone()[0]
    if invalid:
        raise RuntimeError(f"{table}: indexes left invalid after the load: {invalid}")


def _counts(conn):
    row = conn.execute(
        """SELECT (SELECT count(*) FROM shop_customer), (SELECT count(*) FROM shop_item),
                  (SELECT count(*) FROM shop_event), (SELECT count(DISTINCT order_id) FROM shop_event),
                  (SELECT min(occurred_at)::text FROM shop_event), (SELECT max(occurred_at)::text FROM shop_event)"""
    ).fetchone()
    return dict(zip(("customers", "items", "events", "orders", "first_event", "last_event"), row, strict=True))


def repeat_share(conn):
    """The share of purchase lines whose item the customer bought in an earlier order (1% of customers)."""
    share = conn.execute(
        """SELECT avg((rank > 1)::int)::float FROM (
               SELECT dense_rank() OVER (PARTITION BY customer_id, item_id ORDER BY occurred_at, order_id) AS rank
               FROM shop_event WHERE customer_id % 100 = 0
           ) lines"""
    ).fetchone()[0]
    return round(share or 0.0, 3)


def _since(started):
    return round(time.perf_counter() - started, 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01, help="1 = 1M customers, 100k items, ~20M events")
    parser.add_argument("--database-url", required=True, help="a database of its own: it is dropped first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        result = build(args.database_url, args.scale, args.seed)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
