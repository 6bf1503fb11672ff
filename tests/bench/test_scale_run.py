"""The scale benchmark's CI smoke test: bench/run.py --scale 0.01 runs every stage and writes its rows."""

import json
import os
import subprocess
import sys

import psycopg
import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from run import SERVER, STAGES  # noqa: E402

DATABASE = "promo_site_bench_scale_smoke"
KEYS = {"name", "value", "unit", "goal", "reference", "ok", "stage"}


@pytest.fixture
def smoke_database():
    yield DATABASE
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")


@pytest.mark.slow
def test_it_runs_every_stage_at_a_hundredth_and_writes_rows_of_one_shape(tmp_path, smoke_database):
    # given: the benchmark at scale 0.01 (10,000 customers, 1,000 items, about 200,000 purchase lines)
    out = tmp_path / "scale.json"
    # when
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--scale", "0.01", "--database", smoke_database, "--json", str(out)],
        cwd=REPO,
        # The training stage fits a sample and extrapolates (its rows say so): a full sequential epoch at this scale
        # took 74 s of the 6.5 minutes, and the smoke test has 5.
        env={**os.environ, "DEBUG": "1", "BENCH_TRAINING_CUSTOMERS": "2000", "BENCH_TRAINING_ORDER_CUSTOMERS": "2000"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    # then: it wrote the machine, the shop and a row per measurement, every stage with at least one row
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["scale"] == 0.01 and result["machine"]["cores"] >= 1
    assert result["machine"]["postgres_settings"]["shared_buffers"]  # the setting that bounds ingestion
    assert result["shop"]["customers"] == 10_000 and result["shop"]["items"] == 1_000
    assert 150_000 < result["shop"]["events"] < 250_000
    rows = result["rows"]
    assert all(set(row) == KEYS for row in rows), [row for row in rows if set(row) != KEYS]
    assert {row["stage"] for row in rows} == {"shop", *STAGES}
    failed = [row["name"] for row in rows if ": failed" in row["name"]]
    assert not failed, failed
    for row in rows:  # a measured row has a number; ok says whether it meets its goal, and only with one
        assert row["value"] is None or isinstance(row["value"], (int, float)), row
        assert (row["ok"] is None) == (row["goal"] is None or row["value"] is None), row
    measured = {row["stage"] for row in rows if row["value"] is not None}
    assert {"shop", "scoring", "audience", "training", "dashboard", "ingestion"} <= measured
    # and the shop it measured on had every index the migrations give, valid (a partitioned table's indexes
    # rebuilt "ON ONLY" the parent were left invalid and missing on every partition)
    with psycopg.connect(f"{SERVER}/{smoke_database}") as conn:
        invalid = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid").fetchall()
        partitions = conn.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'event_customer_time'::regclass"
        ).fetchone()[0]
    assert invalid == []
    assert partitions > 0
