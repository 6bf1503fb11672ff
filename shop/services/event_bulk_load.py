"""A first load of events into an empty table, the way PostgreSQL's "Populating a Database" advises.

The secondary indexes and the unique constraint of shop_event are dropped, the rows are COPYed into
the bare heap, and the indexes are built again, all inside the import's transaction: a failure
anywhere rolls back the drops with the rows (DDL is transactional in PostgreSQL). CREATE INDEX sorts
the keys once and writes each page once; kept up during a COPY, every row descends every B-tree.
Measured as the server process's CPU time on the 1.47M Complete Journey transactions: COPY 11.4 s
with the indexes, 3.8 s without, and 3.6 s to build them afterwards (docs/benchmarks.md).

What it costs others: dropping an index takes an ACCESS EXCLUSIVE lock on shop_event until the
import commits, so API writers and readers of events wait for the whole import. For a first load
into an empty table that is acceptable; for a table in use it is not, and it is never taken there:

- the lock would stop the API and every reader of events for the length of the import;
- rebuilding costs in proportion to the rows already stored, not to the rows added;
- ids already stored are only recognised through the unique index (INSERT ... ON CONFLICT).

So no threshold "large relative to the table": an empty table, or the incremental path.

The definitions are read from the catalogue before the drop and replayed verbatim, so an index a
later migration adds comes back too. Left in place (and so kept up row by row): the primary key,
indexes a foreign key of another table depends on, indexes backing any constraint other than UNIQUE,
invalid indexes and indexes outside the default tablespace.
"""

from dataclasses import dataclass

import psycopg
from psycopg import sql

TABLE = "shop_event"
# The writer's idempotency key: repeats of it within the file are removed when its index is rebuilt.
IDEMPOTENCY_KEY = ["source", "client_event_id"]
# Wait this long for the lock (an API batch in flight), then fall back to the incremental path.
LOCK_WAIT = "2s"
# Sort memory for the rebuilds: the unique index's keys of 1.47M events (~100 MB) sort in memory.
SORT_MEMORY = 256 * 1024  # kB


@dataclass(frozen=True)
class DetachedIndex:
    name: str  # quoted and schema-qualified
    definition: str  # pg_get_indexdef(): CREATE [UNIQUE] INDEX ... ON ... USING ...
    columns: list
    constraint: str | None = None  # the UNIQUE constraint it backed, quoted
    deferral: str = ""  # "", "DEFERRABLE" or "DEFERRABLE INITIALLY DEFERRED"


_DETACHABLE = """
    SELECT quote_ident(n.nspname) || '.' || quote_ident(i.relname), pg_get_indexdef(x.indexrelid),
        ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, position)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.position),
        quote_ident(c.conname), c.condeferrable, c.condeferred
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_namespace n ON n.oid = i.relnamespace
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
    WHERE x.indrelid = %(table)s::regclass AND NOT x.indisprimary AND x.indisvalid AND x.indisready
        AND i.reltablespace = 0 AND (c.contype IS NULL OR c.contype = 'u')
        AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conindid = x.indexrelid AND f.conrelid <> x.indrelid)
    ORDER BY i.relname
"""


def event_indexes_detach(cursor):
    """Lock the empty events table and drop its secondary indexes; None when the table is not empty.

    Also None (the caller takes the incremental path) when the lock is not free within LOCK_WAIT or the
    transaction is not READ COMMITTED (an older snapshot could call a table empty that is not).
    """
    cursor.execute("SELECT current_setting('transaction_isolation')")
    if cursor.fetchone()[0] != "read committed" or not _looks_empty(cursor):
        return None
    cursor.execute("SAVEPOINT event_bulk_load")
    try:
        previous = _set_local(cursor, "lock_timeout", LOCK_WAIT)
        cursor.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(TABLE)))
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])
        taken = _looks_empty(cursor)  # no one committed rows between the first look and the lock
    except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
        taken = False
    if not taken:
        # Rolling back to the savepoint releases the lock (and lock_timeout): the import goes row by row.
        cursor.execute("ROLLBACK TO SAVEPOINT event_bulk_load")
        cursor.execute("RELEASE SAVEPOINT event_bulk_load")
        return None
    cursor.execute("RELEASE SAVEPOINT event_bulk_load")  # the lock is the transaction's until it ends
    cursor.execute(_DETACHABLE, {"table": TABLE})
    detached = [
        DetachedIndex(name, definition, columns, constraint, _deferral(deferrable, deferred))
        for name, definition, columns, constraint, deferrable, deferred in cursor.fetchall()
    ]
    for index in detached:
        cursor.execute(_drop_statement(index))
    return detached


def _looks_empty(cursor):
    """Whether the table has no rows, without keeping the lock the look takes."""
    cursor.execute("SAVEPOINT event_bulk_look")
    cursor.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(TABLE)))
    empty = cursor.fetchone()[0]
    # Rolling back to the savepoint releases the ACCESS SHARE lock of the look, so that two imports that
    # both found the table empty queue for the exclusive lock instead of deadlocking on the upgrade.
    cursor.execute("ROLLBACK TO SAVEPOINT event_bulk_look")
    cursor.execute("RELEASE SAVEPOINT event_bulk_look")
    return empty


def _set_local(cursor, name, value):
    """SET LOCAL a setting; return its value before, to restore."""
    cursor.execute("SELECT current_setting(%s), set_config(%s, %s, true)", [name, name, value])
    return cursor.fetchone()[0]


def _deferral(deferrable, deferred):
    if not deferrable:
        return ""
    return "DEFERRABLE INITIALLY DEFERRED" if deferred else "DEFERRABLE"


def _drop_statement(index):
    if index.constraint:
        return sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(TABLE), sql.SQL(index.constraint))
    return sql.SQL("DROP INDEX {}").format(sql.SQL(index.name))


def event_indexes_attach(cursor, detached):
    """Build the dropped indexes again and re-add their constraints; return the rows removed as repeats.

    Unique indexes come first. When the idempotency key's cannot be built, the file repeated an event
    id across chunks (the writer drops repeats within a chunk): every repeat but the first is deleted
    and the index built again; a first import without repeats pays nothing for this check. Sort memory
    is raised to SORT_MEMORY for the rest of the transaction (SET LOCAL).
    """
    cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'")  # kB
    if cursor.fetchone()[0] < SORT_MEMORY:
        _set_local(cursor, "maintenance_work_mem", f"{SORT_MEMORY}kB")
    removed = 0
    for index in sorted(detached, key=lambda index: index.constraint is None):
        if index.constraint and index.columns == IDEMPOTENCY_KEY:
            removed += _build_removing_repeats(cursor, index)
        else:
            cursor.execute(index.definition)
        if index.constraint:
            # USING INDEX names the index after the constraint; they had the same name before the drop.
            cursor.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} UNIQUE USING INDEX {} " + index.deferral).format(
                    sql.Identifier(TABLE), sql.SQL(index.constraint), sql.SQL(index.constraint)
                )
            )
    return removed


def _build_removing_repeats(cursor, index):
    cursor.execute("SAVEPOINT event_unique_index")
    try:
        cursor.execute(index.definition)
        cursor.execute("RELEASE SAVEPOINT event_unique_index")
        return 0
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT event_unique_index")
    # Keep the first of each id in file order (the lowest primary key), as ON CONFLICT DO NOTHING does.
    cursor.execute(
        sql.SQL(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY {key} ORDER BY id) AS n FROM {table}) ranked WHERE n > 1)"
        ).format(table=sql.Identifier(TABLE), key=sql.SQL(", ").join(map(sql.Identifier, IDEMPOTENCY_KEY)))
    )
    removed = cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT event_unique_index")
    cursor.execute(index.definition)
    return removed
