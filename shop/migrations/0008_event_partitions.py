"""shop_event becomes a table partitioned by month of occurred_at, on PostgreSQL (issue 15).

PostgreSQL 15 requires every unique index of a partitioned table to hold the partition key, so the primary key
becomes (id, occurred_at) and the idempotency key (source, client_event_id, occurred_at): a retried event carries
its time, so retries still store nothing twice, and a file row's content id already holds its time. The model's
UniqueConstraint changes on every database, so SQLite's embedded mode dedupes the same way. Before PostgreSQL 17 a
partitioned table has no IDENTITY column: id takes nextval() of a sequence owned by the column, started where the
identity's stood.

Existing rows stay where they are: the old table is renamed shop_event_legacy and attached as the partition
[MINVALUE, the month after its newest event), a CHECK constraint sparing ATTACH its scan; its secondary indexes
are renamed and adopted by the parent's, and only the two keys are built again (one sort each). An empty old
table is dropped. The triggers on the old table (the purchase summary's, campaigns 0017, whichever runs first)
are re-created on the parent, where statement triggers see statements on the parent. Monthly partitions are
created by the writers (shop/services/event_partitions.py); rows of a month without one land in
shop_event_default.

Not reversible: going back would copy every event into a plain table.
"""

from django.db import migrations, models

NEW_KEY = models.UniqueConstraint(fields=["source", "client_event_id", "occurred_at"], name="event_unique_per_source")


def _rows(cursor, statement, params=()):
    cursor.execute(statement, params)
    return cursor.fetchall()


def postgres_partition(cursor):
    (empty,) = _rows(cursor, "SELECT NOT EXISTS (SELECT 1 FROM shop_event)")[0]
    triggers = _rows(
        cursor,
        "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'shop_event'::regclass "
        "AND NOT tgisinternal",
    )
    # Secondary indexes, replayed on the parent verbatim (their definitions name public.shop_event).
    indexes = _rows(
        cursor,
        "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = 'shop_event'::regclass AND NOT x.indisprimary "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY 1",
    )
    sequence = _rows(cursor, "SELECT pg_get_serial_sequence('shop_event', 'id')")[0][0]
    next_id = 1
    if sequence:
        last, called = _rows(cursor, f"SELECT last_value, is_called FROM {sequence}")[0]
        next_id = last + 1 if called else last
    for name, _ in triggers:
        cursor.execute(f'DROP TRIGGER "{name}" ON shop_event')
    cursor.execute("ALTER TABLE shop_event ALTER COLUMN id DROP IDENTITY IF EXISTS")
    cursor.execute("ALTER TABLE shop_event ALTER COLUMN id DROP DEFAULT")
    if sequence:  # a serial's sequence (an identity's went with DROP IDENTITY)
        cursor.execute(f"DROP SEQUENCE IF EXISTS {sequence}")
    cursor.execute("ALTER TABLE shop_event RENAME TO shop_event_legacy")
    cursor.execute("ALTER TABLE shop_event_legacy DROP CONSTRAINT IF EXISTS shop_event_pkey")
    cursor.execute("ALTER TABLE shop_event_legacy DROP CONSTRAINT IF EXISTS event_unique_per_source")
    for name, _ in indexes:
        cursor.execute(f'ALTER INDEX "{name}" RENAME TO "{("legacy_" + name)[:63]}"')

    cursor.execute(
        "CREATE TABLE shop_event (LIKE shop_event_legacy INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
        "INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (occurred_at)"
    )
    cursor.execute("CREATE SEQUENCE shop_event_id_seq AS bigint OWNED BY shop_event.id")
    cursor.execute("SELECT setval('shop_event_id_seq', %s, false)", [next_id])
    cursor.execute("ALTER TABLE shop_event ALTER COLUMN id SET DEFAULT nextval('shop_event_id_seq')")
    cursor.execute("ALTER TABLE shop_event ADD CONSTRAINT shop_event_pkey PRIMARY KEY (id, occurred_at)")
    cursor.execute(
        "ALTER TABLE shop_event ADD CONSTRAINT event_unique_per_source UNIQUE (source, client_event_id, occurred_at)"
    )
    for _, definition in indexes:
        cursor.execute(definition)
    cursor.execute("CREATE TABLE shop_event_default PARTITION OF shop_event DEFAULT")
    if empty:
        cursor.execute("DROP TABLE shop_event_legacy")
    else:
        (bound,) = _rows(cursor, "SELECT date_trunc('month', max(occurred_at), 'UTC') + interval '1 month' "
                                 "FROM shop_event_legacy")[0]
        # DDL takes no parameters: the bound as a literal.
        literal = _rows(cursor, "SELECT quote_literal(%s::timestamptz)", [bound])[0][0]
        cursor.execute(f"ALTER TABLE shop_event_legacy ADD CONSTRAINT legacy_bound CHECK (occurred_at < {literal})")
        cursor.execute(f"ALTER TABLE shop_event ATTACH PARTITION shop_event_legacy FOR VALUES FROM (MINVALUE) TO ({literal})")
        cursor.execute("ALTER TABLE shop_event_legacy DROP CONSTRAINT legacy_bound")
    for _, definition in triggers:
        cursor.execute(definition)  # read before the rename: it names shop_event, now the parent


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            postgres_partition(cursor)


class RemoveConstraintElsewhere(migrations.RemoveConstraint):
    """The state's change everywhere; the table's on other databases only (PostgreSQL's: forwards above)."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)


class AddConstraintElsewhere(migrations.AddConstraint):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = True
    dependencies = [("shop", "0007_event_order_id")]
    operations = [
        migrations.RunPython(forwards),
        RemoveConstraintElsewhere(model_name="event", name="event_unique_per_source"),
        AddConstraintElsewhere(model_name="event", constraint=NEW_KEY),
    ]
