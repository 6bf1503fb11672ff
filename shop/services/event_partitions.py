"""Monthly partitions of shop_event on PostgreSQL (migration 0008), created on demand by the event writers.

shop_event is partitioned by RANGE (occurred_at): one partition a month (`shop_event_y2026m12`, the UTC month),
a DEFAULT partition (`shop_event_default`) for rows of a month that has none, and, on a database migrated with
events in it, `shop_event_legacy` covering [MINVALUE, the month after its newest event).

Writers call `partitions_ensure` before writing so that each row lands in its month's small partition, whose
B-trees stay a month deep (what an insert costs grows with them: docs/benchmarks.md). Only months between
FIRST_MONTH and LAST_MONTH are ever created: a hostile date cannot make the writers create partitions without
bound (the row checker refuses dates before 2000 or in the future anyway); rows outside stay in DEFAULT.

Two writers creating the same month serialise on a transaction-level advisory lock per month and look again
once they hold it. Rows of the month already in DEFAULT (written by the ORM, which never calls this) are moved
into the new table with DML on the two partitions themselves, never on the parent: the purchase summary's
statement triggers (campaigns migration 0017) are on the parent, and a DELETE there would take the rows out
of the summary while their re-insert (ids below the watermark) would not put them back. Ids are kept.

What creating costs others: ATTACH PARTITION takes SHARE UPDATE EXCLUSIVE on shop_event (writers and readers
go on) and ACCESS EXCLUSIVE on the DEFAULT partition until the creating transaction ends, so a statement
that reads DEFAULT (any unpruned scan of events) waits for that transaction; an API batch's is short.
"""

import re
from datetime import UTC, datetime

import pandas as pd
from psycopg import sql

TABLE = "shop_event"
DEFAULT = "shop_event_default"
LEGACY = "shop_event_legacy"
FIRST_MONTH = 1990 * 12  # January 1990, as year * 12 + month - 1
LAST_MONTH = 2100 * 12 + 11  # December 2100
LOCK_CLASS = 15_008  # the advisory lock's first key: "shop_event partitions" (the issue and migration)
_BOUND = re.compile(r"FROM \((MINVALUE|'[^']*')\) TO \((MAXVALUE|'[^']*')\)")


def month_of(occurred_at):
    """The UTC month (year * 12 + month - 1) of each time in a Series."""
    times = pd.to_datetime(occurred_at, utc=True)
    return (times.dt.year * 12 + times.dt.month - 1).astype("int64")


def month_start(month):
    return datetime(month // 12, month % 12 + 1, 1, tzinfo=UTC)


def month_bounds(month):
    return month_start(month), month_start(month + 1)


def month_table(month):
    return f"{TABLE}_y{month // 12:04d}m{month % 12 + 1:02d}"


def month_in_range(month):
    return FIRST_MONTH <= month <= LAST_MONTH


def partitioned(cursor):
    """Whether shop_event is a partitioned table (PostgreSQL after migration 0008)."""
    cursor.execute("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
    row = cursor.fetchone()
    return bool(row and row[0])


def months_covered(cursor, months):
    """The months among `months` that a partition other than DEFAULT covers (committed, or this transaction's)."""
    cursor.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [TABLE],
    )
    ranges = []
    for (bound,) in cursor.fetchall():
        found = _BOUND.search(bound or "")
        if found:  # DEFAULT has no range
            ranges.append(tuple(None if b.endswith("VALUE") else pd.Timestamp(b.strip("'")) for b in found.groups()))
    covered = set()
    for month in months:
        low, high = (pd.Timestamp(b) for b in month_bounds(month))
        if any((lo is None or lo <= low) and (hi is None or high <= hi) for lo, hi in ranges):
            covered.add(month)
    return covered


def month_lock(cursor, month):
    """Wait for the month's advisory lock, held until the transaction ends."""
    cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_CLASS, month])


def default_holds(cursor, month):
    """Whether the DEFAULT partition holds rows of the month."""
    low, high = month_bounds(month)
    statement = sql.SQL("SELECT EXISTS (SELECT 1 FROM {} WHERE occurred_at >= %s AND occurred_at < %s)")
    return look(cursor, statement.format(sql.Identifier(DEFAULT)), [low, high])


def look(cursor, statement, params):
    """The first value a read returns, without keeping the locks it took until the transaction ends.

    A long import that kept its ACCESS SHARE lock of DEFAULT would make every other writer's ATTACH (which
    locks DEFAULT ACCESS EXCLUSIVE) wait for it: rolling back to a savepoint releases the locks taken since.
    """
    cursor.execute("SAVEPOINT event_look")
    cursor.execute(statement, params)
    value = cursor.fetchone()[0]
    cursor.execute("ROLLBACK TO SAVEPOINT event_look")
    cursor.execute("RELEASE SAVEPOINT event_look")
    return value


def partitions_ensure(cursor, months):
    """Create the partitions of these months (those in range, not yet covered); return the months created.

    Every missing month's lock is taken, in order, before any is created: a writer holds no lock of DEFAULT
    while it waits for another's month.
    """
    wanted = sorted({int(m) for m in months if month_in_range(int(m))})
    missing = [m for m in wanted if m not in months_covered(cursor, wanted)]
    if not missing:
        return []
    for month in missing:
        month_lock(cursor, month)
    missing = [m for m in missing if m not in months_covered(cursor, missing)]  # made while we waited
    for month in missing:
        partition_create(cursor, month)
    return missing


def partition_create(cursor, month):
    """Create the month's partition (its lock held), moving in the rows of the month DEFAULT holds."""
    table = month_table(month)
    cursor.execute(
        sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)").format(
            sql.Identifier(table), sql.Identifier(TABLE)
        )
    )
    default_move(cursor, table, month)
    partition_attach(cursor, table, month)


def default_move(cursor, table, month):
    """Move DEFAULT's rows of the month into `table` (same ids), by DML on the two tables, not the parent."""
    low, high = month_bounds(month)
    columns = sql.SQL(", ").join(map(sql.Identifier, event_columns(cursor)))
    cursor.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {default} WHERE occurred_at >= %s AND occurred_at < %s RETURNING {columns}) "
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM moved"
        ).format(default=sql.Identifier(DEFAULT), table=sql.Identifier(table), columns=columns),
        [low, high],
    )
    return cursor.rowcount


def partition_attach(cursor, table, month):
    """Attach a table holding only rows of the month as its partition; the CHECK spares ATTACH its scan."""
    low, high = month_bounds(month)
    check = sql.Identifier(f"{table}_month")
    cursor.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (occurred_at >= {} AND occurred_at < {})").format(
            sql.Identifier(table), check, sql.Literal(low), sql.Literal(high)
        )
    )
    # DDL takes no parameters: the bounds are literals.
    cursor.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
            sql.Identifier(TABLE), sql.Identifier(table), sql.Literal(low), sql.Literal(high)
        )
    )
    cursor.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(sql.Identifier(table), check))


def event_columns(cursor):
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [TABLE],
    )
    return [name for (name,) in cursor.fetchall()]
