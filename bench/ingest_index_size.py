"""What the size of the events table costs an insert: the same new rows into copies of its latest N events.

    python bench/ingest_index_size.py --database-url postgres://postgres@127.0.0.1:5433/ing_scale1 \\
        --sizes 1000000,2000000,5000000 --json bench/out/ingest-index-size.json

For each size N it copies the shop's latest N events into a table of shop_event's shape with all its
indexes (what one time partition would hold), then inserts the same --rows new purchases (random
customers and items of the shop, times in the last day, time-prefixed ids of a new source, as
bench/stage_ingestion.py's file has) and rolls them back; then the same into shop_event itself. A
time-partitioned events table sends new rows to its latest partition, so the rate into a copy of N
events is the rate a partition of N events would give. The copies are dropped at the end.
"""

import argparse
import json
import os
import time
from pathlib import Path

import psycopg

NEW_ROWS = """
    INSERT INTO {table} (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
        client_event_id, received_at)
    SELECT c, i, 'purchase', 1 + g %% 3, 1.5 + g %% 29, 0, t, 'size-bench',
        't' || lpad(extract(epoch FROM t)::bigint::text, 11, '0') || '.' || hashint8(g)::text, now()
    FROM (SELECT g, 1 + (hashint8(g) & 16777215) %% %(customers)s AS c,
            1 + (hashint8(g + 7) & 16777215) %% %(items)s AS i,
            now() - (hashint8(g + 13) & 65535) %% 86400 * interval '1 second' AS t
          FROM generate_series(1, %(rows)s) g) drawn
"""  # fmt: skip


def backend_cpu(conn):
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # only when the server is local


def timed_insert(conn, table, rows, customers, items):
    """Seconds (wall, server CPU) to insert `rows` new events into `table`, rolled back."""
    with conn.transaction(force_rollback=True):
        cpu, started = backend_cpu(conn), time.perf_counter()
        conn.execute(NEW_ROWS.format(table=table), {"rows": rows, "customers": customers, "items": items})
        return time.perf_counter() - started, backend_cpu(conn) - cpu


def index_mb(conn, table):
    return conn.execute(
        "SELECT sum(pg_relation_size(indexrelid)) / 1e6 FROM pg_index WHERE indrelid = %s::regclass", [table]
    ).fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a database holding a synthetic shop (its own copy)")
    parser.add_argument("--sizes", default="1000000,2000000,5000000", help="events in each copy")
    parser.add_argument("--rows", type=int, default=400_000, help="new events inserted into each")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    results = []
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        conn.execute("SET jit = off")
        customers = conn.execute("SELECT max(id) FROM shop_customer").fetchone()[0]
        items = conn.execute("SELECT max(id) FROM shop_item").fetchone()[0]
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in ("shared_buffers", "max_wal_size")}
        sizes = [int(size) for size in args.sizes.split(",")] + [None]
        for size in sizes:
            table = "shop_event" if size is None else f"ing_size_{size}"
            if size is not None:
                conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute(f"CREATE TABLE {table} (LIKE shop_event INCLUDING ALL)")
                conn.execute(f"INSERT INTO {table} SELECT * FROM shop_event ORDER BY id DESC LIMIT {size}")
                conn.execute(f"VACUUM ANALYZE {table}")
            events = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            timed_insert(conn, table, args.rows // 4, customers, items)  # warm its pages, as a live table has them
            seconds, cpu = timed_insert(conn, table, args.rows, customers, items)
            results.append({"table_events": events, "index_mb": round(index_mb(conn, table)), "rows": args.rows,
                            "seconds": round(seconds, 2), "server_cpu_s": round(cpu, 2),
                            "rows_per_s": round(args.rows / seconds), "load_average": os.getloadavg()})  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
            if size is not None:
                conn.execute(f"DROP TABLE {table}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    out = {"ran_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "settings": settings, "results": results}
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
