"""Migration 0008 turns shop_event into a partitioned table, keeping the events a deployment already holds.

Each test migrates a database of its own from nothing (the test database's name + "_migration", dropped at the end).
"""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

# No django_db mark: the test database is not used, and Django's test case would refuse the new connection.
pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's")
BEFORE = [("shop", "0007_event_order_id"), ("campaigns", "0017_purchase_summary")]
REPO = Path(__file__).resolve().parents[2]


MIGRATE = """
import django
django.setup()
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
executor = MigrationExecutor(connection)
executor.migrate({targets} or executor.loader.graph.leaf_nodes())
"""


@pytest.fixture
def fresh(django_db_setup, django_db_blocker):
    """A psycopg connection to a new, empty database (migrations run in a process of their own: some of them
    use Django's default connection)."""
    settings = connection.settings_dict
    name = f"{settings['NAME']}_migration"
    server = dict(user=settings["USER"], host=settings["HOST"], port=settings["PORT"] or None)
    server["password"] = settings["PASSWORD"] or None
    with psycopg.connect(dbname="postgres", **server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT'] or 5432}/{name}"
    try:
        with psycopg.connect(dbname=name, **server, autocommit=True) as conn:
            conn.url = url
            yield conn
    finally:
        with psycopg.connect(dbname="postgres", **server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def migrate(conn, targets=None):
    env = dict(os.environ, DATABASE_URL=conn.url, DJANGO_SETTINGS_MODULE="promo_site.settings")
    if settings_password := connection.settings_dict["PASSWORD"]:
        env["DATABASE_URL"] = conn.url.replace("@", f":{settings_password}@", 1)
    subprocess.run(
        [sys.executable, "-c", MIGRATE.format(targets=targets)], env=env, cwd=REPO, check=True, capture_output=True
    )


def rows(conn, statement, params=()):
    return conn.execute(statement, params).fetchall()


STORE = """
    INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent, consent_source,
        suppressed, suppressed_reason, time_zone, is_stub, created_at, updated_at)
    VALUES ('c1', '', '', '{}', '{}', false, '', false, '', 'UTC', true, now(), now());
    INSERT INTO shop_event (customer_id, type, quantity, value, discount, occurred_at, source, client_event_id,
        received_at)
    SELECT 1, 'purchase', 1, 2.50, 0, timestamptz '2024-01-01' + g * interval '1 day', 'till', 'e' || g, now()
    FROM generate_series(1, 100) g;
"""


def test_stored_events_survive_in_the_legacy_partition(fresh):
    # given a database before 0008 holding 100 events from January to April 2024
    migrate(fresh, BEFORE)
    fresh.execute(STORE)
    before = rows(fresh, "SELECT id, occurred_at, client_event_id FROM shop_event ORDER BY id")
    # when it is migrated
    migrate(fresh)
    # then every event is there with its id, in the legacy partition that ends with its newest month
    assert rows(fresh, "SELECT id, occurred_at, client_event_id FROM shop_event ORDER BY id") == before
    assert rows(fresh, "SELECT DISTINCT tableoid::regclass::text FROM shop_event") == [("shop_event_legacy",)]
    (bound,) = rows(fresh, "SELECT pg_get_expr(relpartbound, oid) FROM pg_class WHERE relname = 'shop_event_legacy'")[0]
    assert bound == "FOR VALUES FROM (MINVALUE) TO ('2024-05-01 00:00:00+00')"
    # and the keys hold the partition key, the purchase summary's triggers are on the parent, ids go on
    assert rows(fresh, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = 'shop_event'::regclass "
                       "AND contype IN ('p', 'u') ORDER BY contype") == [
        ("PRIMARY KEY (id, occurred_at)",),
        ("UNIQUE (source, client_event_id, occurred_at)",),
    ]  # fmt: skip
    assert rows(fresh, "SELECT tgname FROM pg_trigger WHERE tgrelid = 'shop_event'::regclass ORDER BY 1") == [
        ("purchase_day_deleted",),
        ("purchase_day_truncated",),
        ("purchase_day_updated",),
    ]
    (inserted,) = rows(
        fresh,
        "INSERT INTO shop_event (customer_id, type, quantity, discount, occurred_at, source, client_event_id, "
        "received_at) VALUES (1, 'view', 1, 0, '2024-06-02', 'till', 'new', now()) "
        "RETURNING id, tableoid::regclass::text",
    )
    assert inserted == (before[-1][0] + 1, "shop_event_default")


def test_an_empty_table_becomes_a_partitioned_one(fresh):
    # when a database is migrated from nothing
    migrate(fresh)
    # then shop_event is partitioned by range of occurred_at, with only its DEFAULT partition
    assert rows(fresh, "SELECT pg_get_partkeydef('shop_event'::regclass)") == [("RANGE (occurred_at)",)]
    assert rows(fresh, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'shop_event'::regclass "
                       "AND inhrelid::regclass::text LIKE 'shop_event%%'") == [("shop_event_default",)]  # fmt: skip
    assert rows(fresh, "SELECT to_regclass('shop_event_legacy')") == [(None,)]
