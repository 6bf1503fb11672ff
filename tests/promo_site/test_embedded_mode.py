"""Embedded mode (SQLite, no Redis) works to the end: tests/embedded runs in a pytest of its own with those settings."""

import os
import subprocess
import sys

from tests.conftest import REPO

SERVICES = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "TEST_DATABASE_NAME", "PYTEST_ADDOPTS")


def test_the_marketers_walk_runs_in_embedded_mode(tmp_path):
    # given: settings that find neither PostgreSQL nor Redis (nothing listens on 127.0.0.2)
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'promo_site.sqlite3'}",
        PROMO_VAR_DIR=str(tmp_path),
        PROMO_PROBE_HOST="127.0.0.2",
    )
    # when
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "tests/embedded"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # then: they ran (none skipped) and passed
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "skipped" not in run.stdout, run.stdout[-4000:]
