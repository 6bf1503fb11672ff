"""A first load of a month's events into its own new partition, the way PostgreSQL's "Populating a Database" advises.

shop_event is partitioned by month (migration 0008, shop/services/event_partitions.py). When a file import meets
rows of a month that has no partition yet (and none of whose rows sit in DEFAULT), the writer creates the month's
table standalone, COPYs the rows into its bare heap, and at finish() builds the parent's indexes and keys on it
once (CREATE INDEX sorts the keys once and writes each page once; kept up during a COPY, every row descends every
B-tree) and ATTACHes it. All of it in the import's transaction: a failure anywhere rolls back the table with the
rows (DDL is transactional in PostgreSQL). Measured: docs/benchmarks.md.

What it costs others, unlike the whole-table first load it replaces (which needed the table empty and held it
ACCESS EXCLUSIVE for the whole import): the standalone table is the import's alone, and ATTACH takes only SHARE
UPDATE EXCLUSIVE on shop_event, so API writers and readers of other months go on. The month's advisory lock is
held until the import commits: a writer of the same month waits for it, then finds the partition and writes
into it. ATTACH locks DEFAULT ACCESS EXCLUSIVE from finish() to the commit (a moment: the import commits next).
The table is analysed before it is attached, so that its month is planned with its own statistics from the
start. Months that already have a partition take the incremental path (INSERT ... ON CONFLICT DO NOTHING) into it.
Two imports that meet the same two new months in opposite orders (in different chunks) can deadlock on their
locks: PostgreSQL stops one, whose import then fails and stores nothing, to be run again.

The index and key definitions are read from the parent, so an index a later migration adds is built too, and
ATTACH adopts each (a matching index is attached, not built again).
"""

import re

import psycopg
from psycopg import sql

from shop.services.event_partitions import TABLE, default_move, partition_attach

# The writer's idempotency key: repeats of it within the file are removed when its unique index is built.
IDEMPOTENCY_KEY = ["source", "client_event_id", "occurred_at"]
# Sort memory for the builds: the unique index's keys of a month of 1.47M events (~100 MB) sort in memory.
SORT_MEMORY = 256 * 1024  # kB

_PARENT_INDEXES = """
    SELECT pg_get_indexdef(x.indexrelid), pg_get_constraintdef(c.oid),
        ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, position)
              JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum ORDER BY k.position)
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    LEFT JOIN pg_constraint c ON c.conindid = x.indexrelid AND c.conrelid = x.indrelid
    WHERE x.indrelid = %(table)s::regclass
    ORDER BY c.oid IS NULL, i.relname
"""
_ON_PARENT = re.compile(r"^CREATE (UNIQUE )?INDEX \S+ ON ONLY \S+ ")


def month_load_begin(cursor, table):
    """Create `table`, the month's future partition, standalone and without indexes; COPY its rows into it."""
    cursor.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)").format(
            sql.Identifier(table), sql.Identifier(TABLE)
        )
    )


def month_load_finish(cursor, table, month):
    """Build the parent's keys and indexes on the loaded table and attach it; return the rows removed as repeats.

    Rows of the month that reached DEFAULT meanwhile (the ORM's: the writers hold the month's lock) are moved
    in first. Keys come first: when the idempotency key's cannot be built, the file repeated an event across
    chunks (the writer drops repeats within a chunk); every repeat but the first is deleted and the key built
    again, and a load without repeats pays nothing for the check.
    """
    cursor.execute("SELECT setting::bigint FROM pg_settings WHERE name = 'maintenance_work_mem'")  # kB
    if cursor.fetchone()[0] < SORT_MEMORY:
        cursor.execute("SELECT set_config('maintenance_work_mem', %s, true)", [f"{SORT_MEMORY}kB"])
    default_move(cursor, table, month)
    cursor.execute(_PARENT_INDEXES, {"table": TABLE})
    removed = 0
    for definition, constraint, columns in cursor.fetchall():
        if constraint:
            statement = sql.SQL("ALTER TABLE {} ADD ").format(sql.Identifier(table)) + sql.SQL(constraint)
        else:
            head = _ON_PARENT.match(definition)
            statement = sql.SQL("CREATE {}INDEX ON {} ").format(
                sql.SQL(head.group(1) or ""), sql.Identifier(table)
            ) + sql.SQL(definition[head.end() :])
        if constraint and columns == IDEMPOTENCY_KEY:
            removed += _build_removing_repeats(cursor, table, statement)
        else:
            cursor.execute(statement)
    # Statistics for its columns before anyone plans a query on it ("Populating a Database": run ANALYZE
    # afterwards). Without them the planner guesses how many of the month's rows `customer_id = ANY(500 ids)`
    # matches, until autovacuum comes by (off on the CI machines; a minute or more behind elsewhere), and may
    # read the whole month for a chunk of customers.
    cursor.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(table)))
    partition_attach(cursor, table, month)
    return removed


def _build_removing_repeats(cursor, table, statement):
    cursor.execute("SAVEPOINT event_unique_index")
    try:
        cursor.execute(statement)
        cursor.execute("RELEASE SAVEPOINT event_unique_index")
        return 0
    except psycopg.errors.UniqueViolation:
        cursor.execute("ROLLBACK TO SAVEPOINT event_unique_index")
    # Keep the first of each id in file order (the lowest primary key), as ON CONFLICT DO NOTHING does.
    cursor.execute(
        sql.SQL(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY {key} ORDER BY id) AS n FROM {table}) ranked WHERE n > 1)"
        ).format(table=sql.Identifier(table), key=sql.SQL(", ").join(map(sql.Identifier, IDEMPOTENCY_KEY)))
    )
    removed = cursor.rowcount
    cursor.execute("RELEASE SAVEPOINT event_unique_index")
    cursor.execute(statement)
    return removed
