"""The scale benchmark: a synthetic shop of a given size, and every stage a marketer waits for, beside its goal.

    python bench/run.py --scale 0.1 --json bench/out/scale-0.1.json
    python bench/run.py --scale 1 --keep-shop --stages scoring,audience --json bench/out/scale-1.json

It builds the shop with bench/synthetic_shop.py in a database of its own (promo_site_bench_scale; at
scale 1: 1M customers, 100k items, 20M purchase lines), then runs each stage module's
``measure(database_url=..., scale=...)`` in a fresh process of its own (so a stage's peak memory is its
own, and Django is set up against the benchmark's database), in this order:

    scoring     bench/stage_scoring.py     top-20 of all items for every customer, against a plain matmul
    audience    bench/stage_audience.py    an audience count with behaviour rules over all events
    generation  bench/stage_generation.py  a campaign batch for every customer
    sending     bench/stage_sending.py     sending that batch
    training    bench/stage_training.py    the deep model's seconds per epoch and peak memory
    dashboard   bench/stage_dashboard.py   attribution and the dashboard with millions of tracking events
    ingestion   bench/stage_ingestion.py   the events API and the file import into the large database

A stage whose module is missing gives a row saying so; one that fails gives a row with its error (and
the run goes on). Each row is {"name", "value", "unit", "goal", "reference", "ok", "stage"}: goal is a comparison
("<= 2", ">= 1000") in the row's unit or null, ok whether the value meets it (null without a goal).
Goals are the issue's, at scale 1; at smaller scales they are printed and checked but mean little. The
run writes {"scale", "machine", "shop", "rows"} as JSON and never fails on a goal missed.

Options for long runs: --keep-shop reuses the database when it already holds a shop of this scale (the
dashboard and ingestion stages add rows to it, so run them last, and the dashboard's only once a shop);
--scoring-customers N scores N customers and extrapolates (stated in the row's name). The database is
left in place for a look afterwards; drop it with ``dropdb promo_site_bench_scale``. --server-url runs
against another PostgreSQL server (one started with other settings, say); the JSON's "machine" names the
server's settings that bound the stages (shared_buffers, max_wal_size...).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import synthetic_shop  # noqa: E402

DATABASE = "promo_site_bench_scale"
SERVER = os.environ.get("BENCH_DATABASE_SERVER", "postgres://postgres@127.0.0.1:5432")
# The stages' broker and Redis: a database number of the bench's own, never the development stack's (0, 1)
# nor the test suite's (14, 15), whose workers would take the bench's tasks against another database.
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
STAGES = ("scoring", "audience", "generation", "sending", "training", "dashboard", "ingestion")
STAGE_TIMEOUT_S = 4 * 3600
# The server's settings written with the figures: what bounds ingestion and the large queries.
SERVER_SETTINGS = ("shared_buffers", "max_wal_size", "checkpoint_timeout", "wal_compression", "synchronous_commit",
                   "work_mem", "maintenance_work_mem", "effective_cache_size")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.01, help="1 = 1M customers, 100k items, 20M events")
    parser.add_argument("--json", type=Path, help="where to write the rows (required)")
    parser.add_argument("--server-url", default=SERVER, help=f"the PostgreSQL server (default {SERVER})")
    parser.add_argument("--database", default=DATABASE, help=f"the benchmark's own database (default {DATABASE})")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated, in the order above")
    parser.add_argument("--keep-shop", action="store_true", help="reuse the shop if the database holds this scale")
    parser.add_argument("--scoring-customers", type=int, help="score this many customers and extrapolate")
    parser.add_argument(
        "--ingestion-file",
        choices=("next-month", "last-day"),
        help="the ingestion stage's file: a month's export after the shop's newest event (default), or the day "
        "that ends now (the measurement before shop migration 0008)",
    )
    parser.add_argument("--stage-only", help=argparse.SUPPRESS)  # the child process of one stage
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    stages = [name.strip() for name in args.stages.split(",") if name.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"--stages: unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
    if not args.scale > 0:
        parser.error(f"--scale must be a positive number, got {args.scale}")
    database_url = f"{args.server_url.rstrip('/')}/{args.database}"
    if args.stage_only:
        return stage_child(args.stage_only, database_url, args.scale, args.out)
    if args.json is None:
        parser.error("--json is required: the file the rows are written to")
    if args.scoring_customers:
        os.environ["BENCH_SCORING_CUSTOMERS"] = str(args.scoring_customers)
    if args.ingestion_file:
        os.environ["BENCH_INGESTION_FILE"] = args.ingestion_file
    result = run(database_url, args.scale, stages, keep_shop=args.keep_shop)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {args.json}")


def run(database_url, scale, stages, *, keep_shop=False):
    started = time.perf_counter()
    shop = shop_reused(database_url, scale) if keep_shop else None
    if shop is None:
        print(f"building the synthetic shop at scale {scale} in {database_url.rsplit('/', 1)[-1]}", flush=True)
        shop = synthetic_shop.build(database_url, scale, log=lambda line: print(line, flush=True))
    rows = [
        row("shop: build (create, migrate, fill, index, analyze)", shop["seconds"]["total"], "s", None, None),
        row("shop: purchase events", shop["events"], "events", None, None),
    ]
    for r in rows:
        r["stage"] = "shop"
    print(json.dumps(shop), flush=True)
    for stage in stages:
        stage_rows = [r | {"stage": stage} for r in stage_run(stage, database_url, scale)]
        print_rows(stage_rows)
        rows += stage_rows
    return {
        "scale": scale,
        "machine": machine(database_url),
        "ran_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": round(time.perf_counter() - started, 1),
        "shop": shop,
        "rows": rows,
    }


def shop_reused(database_url, scale):
    """The shop's counts when the database already holds one of this scale (same customers and items)."""
    import psycopg

    expected = synthetic_shop.sizes(scale)
    try:
        with psycopg.connect(database_url) as conn:
            customers, items, events = conn.execute(
                "SELECT (SELECT count(*) FROM shop_customer WHERE consent_source = 'synthetic'), "
                "(SELECT count(*) FROM shop_item WHERE NOT is_stub), "
                "(SELECT count(*) FROM shop_event WHERE source = 'synthetic')"
            ).fetchone()
    except psycopg.Error:
        return None
    if (customers, items) != (expected["customers"], expected["items"]) or not events:
        return None
    print(f"reusing the shop in {database_url.rsplit('/', 1)[-1]}: {customers:,} customers, {events:,} events")
    synthetic_shop.migrate(database_url)  # a shop kept from before a new migration gets it (a no-op otherwise)
    return {"scale": scale, "customers": customers, "items": items, "events": events, "reused": True,
            "seconds": {"total": 0.0}}  # fmt: skip


def stage_run(stage, database_url, scale):
    """The rows of one stage, measured in a process of its own; a row saying why when there are none."""
    module = f"stage_{stage}"
    if importlib.util.find_spec(module) is None:
        return [row(f"{stage}: not measured: module missing (bench/{module}.py)", None, None, None, None)]
    print(f"--- {stage}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rows.json"
        server, database = database_url.rsplit("/", 1)
        command = [sys.executable, __file__, "--stage-only", stage, "--scale", str(scale), "--out", str(out),
                   "--server-url", server, "--database", database]  # fmt: skip
        try:
            done = subprocess.run(
                command, cwd=REPO, env=stage_env(), timeout=STAGE_TIMEOUT_S, stderr=subprocess.PIPE, text=True
            )
        except subprocess.TimeoutExpired:
            return [row(f"{stage}: failed: ran past {STAGE_TIMEOUT_S} s", None, None, None, None, ok=False)]
        if done.returncode != 0 or not out.exists():
            sys.stderr.write(done.stderr)
            error = (done.stderr.strip().splitlines() or ["no output"])[-1]
            if done.returncode < 0:  # SIGKILL is what the kernel's OOM killer sends
                error = f"killed by signal {-done.returncode} (9: e.g. out of memory, see dmesg)"
            return [row(f"{stage}: failed: {error}", None, None, None, None, ok=False)]
        return [checked(r) for r in json.loads(out.read_text())]


def stage_env():
    """A stage's environment: the bench's own Redis for broker and rate limiter, and not under pytest (the CI
    smoke runs this from a test: a child that inherited PYTEST_VERSION would take the test suite's settings)."""
    env = {key: value for key, value in os.environ.items() if key != "PYTEST_VERSION"}
    return env | {"REDIS_URL": REDIS, "CELERY_BROKER_URL": REDIS}


def stage_child(stage, database_url, scale, out):
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    os.environ.setdefault("DEBUG", "1")  # a development benchmark: the settings run safe (and need a key) without it
    os.environ["ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"
    import django

    django.setup()
    module = importlib.import_module(f"stage_{stage}")
    rows = module.measure(database_url=database_url, scale=scale)
    out.write_text(json.dumps(rows, default=str))


def row(name, value, unit, goal, reference, ok=None):
    return checked({"name": name, "value": value, "unit": unit, "goal": goal, "reference": reference, "ok": ok})


def checked(r):
    """The row with every key, values rounded, and ok computed from its goal where the stage left it out."""
    # One shape for every row: a stage's own extra keys (its scale, model version...) are left out here.
    r = {key: r.get(key) for key in ("name", "value", "unit", "goal", "reference", "ok")} | (
        {"stage": r["stage"]} if "stage" in r else {}
    )
    for key in ("value", "reference"):
        if isinstance(r[key], float):
            r[key] = round(r[key], 4 if abs(r[key]) < 10 else 1)
    if r["goal"] is None and r["ok"] is True:  # nothing to meet: a plain measurement (a failure keeps its False)
        r["ok"] = None
    if r["ok"] is None and r["goal"] and isinstance(r["value"], (int, float)):
        op, bound = r["goal"].split()
        r["ok"] = {"<=": r["value"] <= float(bound), ">=": r["value"] >= float(bound),
                   "<": r["value"] < float(bound), ">": r["value"] > float(bound)}[op]  # fmt: skip
    return r


def print_rows(rows):
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:,}" if isinstance(r["value"], int) else r["value"]
        goal = f"goal {r['goal']}" if r["goal"] else ""
        reference = "" if r["reference"] is None else f"reference {r['reference']}"
        verdict = {True: "ok", False: "MISSED", None: ""}[r["ok"]]
        print(f"  {r['name']:<90} {value!s:>12} {r['unit'] or '':<12} {goal:<12} {reference:<22} {verdict}")


def machine(database_url):
    import platform

    import psycopg

    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    memory_kib = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    with psycopg.connect(database_url) as conn:
        postgres = conn.execute("SELECT version()").fetchone()[0].split(" on ")[0]
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0] for name in SERVER_SETTINGS}
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 1024**2),
            "python": platform.python_version(), "postgres": postgres, "postgres_settings": settings,
            "server": database_url.rsplit("/", 1)[0].rsplit("@", 1)[-1], "load_average": os.getloadavg()}  # fmt: skip


if __name__ == "__main__":
    main()
