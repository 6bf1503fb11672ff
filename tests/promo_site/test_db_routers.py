"""The read replica for the dashboard (promo_site/db_routers.py, DATABASE_REPLICA_URL)."""

import json
import os
import subprocess
import sys

import pytest

from promo_site.db_routers import REPLICA, ReplicaRouter, replica_reads
from tests.conftest import REPO


def test_the_router_sends_only_the_reads_inside_replica_reads_to_the_replica():
    router = ReplicaRouter()
    assert router.db_for_read(None) is None  # the primary
    with replica_reads():
        assert router.db_for_read(None) == REPLICA
        assert router.db_for_write(None) == "default"  # writes never go to the replica
        with replica_reads():
            pass
        assert router.db_for_read(None) == REPLICA  # a nested block leaves the outer one as it was
    assert router.db_for_read(None) is None
    assert router.allow_migrate("default", "campaigns") and not router.allow_migrate(REPLICA, "campaigns")


def test_without_a_replica_configured_there_is_no_router_and_one_database():
    from django.conf import settings

    assert "DATABASE_REPLICA_URL" not in os.environ
    assert set(settings.DATABASES) == {"default"} and not settings.DATABASE_ROUTERS


# Run in a process whose settings have a replica: the same database under a second connection, so the
# queries each connection ran show where the dashboard read from.
SCRIPT = """
import json, django
django.setup()
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from campaigns.dashboard.views import dashboard, dashboard_csv

request = RequestFactory().get("/dashboard/")
request.user = get_user_model()(username="analyst", is_staff=True, is_superuser=True, is_active=True)
out = {}
for name, view in (("page", dashboard), ("csv", dashboard_csv)):
    with CaptureQueriesContext(connections["default"]) as primary:
        with CaptureQueriesContext(connections["replica"]) as replica:
            status = view(request).status_code
    out[name] = {"status": status, "primary": [q["sql"] for q in primary], "replica": [q["sql"] for q in replica]}
print(json.dumps(out))
"""


@pytest.mark.django_db
def test_with_a_replica_the_dashboard_reads_its_figures_from_it(settings):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("the replica is a second PostgreSQL connection")
    # given: settings whose replica is the test database itself, under its own connection
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {**os.environ, "DEBUG": "1", "DATABASE_URL": url, "DATABASE_REPLICA_URL": url,
           "REDIS_URL": settings.REDIS_URL, "DJANGO_SETTINGS_MODULE": "promo_site.settings"}  # fmt: skip
    env.pop("PYTEST_VERSION", None)
    # when: the dashboard page and its CSV are asked for
    command = [sys.executable, "-c", SCRIPT]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    # then: both answered, and every read of the aggregates and the shop's history went to the replica
    for name in ("page", "csv"):
        assert out[name]["status"] == 200
        replica, primary = " ".join(out[name]["replica"]), " ".join(out[name]["primary"])
        assert "campaigns_batchdailystats" in replica, out[name]
        assert "campaigns_batchdailystats" not in primary and "campaigns_batchuplift" not in primary, primary
    assert "shop_externalcampaign" in " ".join(out["page"]["replica"])
    assert "shop_externalcampaign" not in " ".join(out["page"]["primary"])
