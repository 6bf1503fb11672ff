"""Reads that may come from a read replica: the dashboard's (`DATABASE_REPLICA_URL`).

The dashboard and its CSV read only aggregates and the shop's history, and a replica a few seconds behind
shows the same figures; everything else (the admin, the API, the workers) reads what it has just written
and stays on the primary. With `DATABASE_REPLICA_URL` set, settings.py adds the `replica` connection and
this router; the views that may read from it run their reads inside `replica_reads()`. Without it (the
default, and every test run) `replica_reads()` changes nothing.
"""

from contextlib import contextmanager
from contextvars import ContextVar

REPLICA = "replica"
_reading_from_replica = ContextVar("reading_from_replica", default=False)


@contextmanager
def replica_reads():
    """Within this block, models are read from the replica (where one is configured)."""
    token = _reading_from_replica.set(True)
    try:
        yield
    finally:
        _reading_from_replica.reset(token)


class ReplicaRouter:
    """Sends the reads made inside replica_reads() to the replica; every write, and every other read, to
    the primary. Only settings.py installs it, and only with a replica configured."""

    def db_for_read(self, model, **hints):
        return REPLICA if _reading_from_replica.get() else None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the same data on both

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"  # the replica follows the primary's schema by replication
