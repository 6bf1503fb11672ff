"""Bulk writes of events, shared by the REST API and the file import.

Rows arrive as a pandas DataFrame naming customers and items by their external ids
(STAGE_COLUMNS). On PostgreSQL each chunk's ids are resolved (stub customers and items are
created for unknown ones) and the rows are written with COPY: straight into shop_event for a
source that has no events yet, else through a temporary staging table and INSERT ... SELECT ...
ON CONFLICT DO NOTHING, so a retried batch or a re-imported file stores nothing twice. Before writing,
the monthly partitions of the rows' months are created (event_partitions.py); a file import's rows of a
month that had no partition go into a new table of their own, indexed once and attached at the end
(event_bulk_load.py).
Everything happens in the caller's transaction: a failure leaves nothing half-written. On other
databases the same contract is met with the ORM (slower, for the embedded development mode only).

Figures: docs/benchmarks.md (`python bench/ingest.py`).
"""

import io
import json
import math
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import psycopg
from django.db import connection
from django.utils import timezone

from shop.models import Customer, Event, Item
from shop.services import event_partitions as partitions
from shop.services.event_bulk_load import month_load_begin, month_load_finish

COPY_BLOCK = 1 << 20
STAGE_COLUMNS = [
    "customer",  # external id, never empty
    "item",  # external id or None
    "type",
    "quantity",
    "value",
    "discount",
    "occurred_at",  # tz-aware pandas Timestamp
    "source",
    "client_event_id",
    "attributes",  # dict or None
    "order_id",  # the shop's order (basket) id or None; a frame without the column has none
]


@dataclass
class StoreResult:
    received: int = 0
    stored: int = 0
    customers_created: int = 0
    items_created: int = 0
    types: set = field(default_factory=set)  # the event types among the rows received (stored or repeats)

    @property
    def duplicates(self):
        return self.received - self.stored


def event_writer(*, bulk_load=False):
    """The writer for the configured database.

    `bulk_load`: load the rows of a month that has no partition yet into a new table, indexed and attached
    as the month's partition at finish(). For file imports only: the month's writers wait for the import.
    """
    if connection.vendor == "postgresql":
        return PostgresEventWriter(bulk_load=bulk_load)
    return PortableEventWriter()


def _none_if_nan(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT or value is pd.NA:
        return None
    return value


_STAGE_DDL = """
    CREATE TEMP TABLE IF NOT EXISTS event_stage (
        customer_id bigint NOT NULL, item_id bigint, type text NOT NULL, quantity integer NOT NULL,
        value numeric(12, 2), discount numeric(12, 2) NOT NULL, occurred_at timestamptz NOT NULL,
        source text NOT NULL, client_event_id text NOT NULL, attributes jsonb, order_id text,
        received_at timestamptz NOT NULL
    ) ON COMMIT DROP
"""
_STAGED = (
    "customer_id, item_id, type, quantity, value, discount, occurred_at, source, client_event_id, attributes, order_id"
)
_MOVE_EVENTS = f"""
    INSERT INTO shop_event ({_STAGED}, received_at)
    SELECT {_STAGED}, received_at FROM event_stage
    ON CONFLICT (source, client_event_id, occurred_at) DO NOTHING
"""
# A chunk this small (an API batch: API_MAX_BATCH is 1,000) goes in as one INSERT ... SELECT FROM unnest(arrays):
# one round trip, where the staging table took four (CREATE TEMP TABLE, COPY, INSERT ... SELECT, TRUNCATE)
# and its creation and drop wrote the system catalogues at every batch. A large chunk's COPY stays faster.
SMALL_CHUNK = 5000
_INSERT_ARRAYS = f"""
    INSERT INTO shop_event ({_STAGED}, received_at)
    SELECT c, i, t, q, v::numeric(12, 2), d::numeric(12, 2), o, s, e, a::jsonb, r, %(now)s
    FROM unnest(%(c)s::bigint[], %(i)s::bigint[], %(t)s::text[], %(q)s::integer[], %(v)s::float8[],
        %(d)s::float8[], %(o)s::timestamptz[], %(s)s::text[], %(e)s::text[], %(a)s::text[], %(r)s::text[])
        AS rows (c, i, t, q, v, d, o, s, e, a, r)
    ON CONFLICT (source, client_event_id, occurred_at) DO NOTHING
"""
_STUBS = {
    "shop_customer": """
        INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
            consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at, updated_at)
        SELECT e, '', '', '{}'::jsonb, '{}'::jsonb, false, '', false, '', 'UTC', true, %(now)s, %(now)s
        FROM unnest(%(ids)s::text[]) e
        ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id
    """,
    "shop_item": """
        INSERT INTO shop_item (external_id, title, category_path, brand, active, in_stock, image_url, attributes,
            is_stub, created_at, updated_at)
        SELECT e, '', '', '', true, true, '', '{}'::jsonb, true, %(now)s, %(now)s
        FROM unnest(%(ids)s::text[]) e
        ON CONFLICT (external_id) DO NOTHING RETURNING external_id, id
    """,
}


# The first chunk of an import naming at least this many ids unknown to the writer reads the table's whole
# (external id, key) list, if the table holds at most PRELOAD_MAX_ROWS rows (a million customers' keys take about
# 1.5 s and 150 MB; looked up 50,000 at a time by index, 770,000 of them took 10 s).
PRELOAD_MIN_UNKNOWN = 10_000
PRELOAD_MAX_ROWS = 3_000_000


class _KeyCache:
    """External ids met so far and their keys: the table's whole list when preloaded (a pandas Index, whose
    hash table is built once), plus a dict of those looked up one chunk at a time."""

    def __init__(self):
        self.index = pd.Index([], dtype=object)
        self.index_keys = np.empty(0, dtype=np.int64)
        self.extra = {}
        self.preloaded = False

    def keys_of(self, external_ids):
        """(the keys of the ids, -1 where unknown or null; the distinct non-null ids unknown)."""
        values = external_ids.astype(object).where(external_ids.notna(), None).to_numpy()
        keys = np.full(len(values), -1, dtype=np.int64)
        if len(self.index):
            at = self.index.get_indexer(values)
            keys = np.where(at >= 0, self.index_keys[at], -1)
        missing = np.flatnonzero(keys < 0)
        unknown = {}
        get = self.extra.get
        for position in missing:
            value = values[position]
            if value is None:
                continue
            key = get(value)
            if key is None:
                unknown[value] = None
            else:
                keys[position] = key
        return keys, list(unknown)

    def add(self, pairs):
        self.extra.update(pairs)

    def preload(self, cursor, table):
        """Read the table's (external id, key) pairs, unless it holds more than PRELOAD_MAX_ROWS; whether it did."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        self.preloaded = True  # once per import, whatever the outcome
        cursor.execute(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT %s) bounded", [PRELOAD_MAX_ROWS + 1])
        if cursor.fetchone()[0] > PRELOAD_MAX_ROWS:
            return False
        buffer = io.BytesIO()
        # CSV, not the text format: an id holding a tab, a newline or a backslash comes back as it is stored.
        with cursor.copy(f"COPY (SELECT external_id, id FROM {table}) TO STDOUT (FORMAT csv)") as copy:
            for block in copy:
                buffer.write(block)
        if not buffer.tell():  # an empty table
            return True
        buffer.seek(0)
        pairs = pacsv.read_csv(
            buffer,
            read_options=pacsv.ReadOptions(column_names=["external_id", "id"]),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(
                column_types={"external_id": pa.large_string(), "id": pa.int64()},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        self.index = pd.Index(pairs.column("external_id").to_pandas().astype(object))
        self.index_keys = pairs.column("id").to_numpy()
        return True


class PostgresEventWriter:
    """Writes each chunk while the caller prepares the next one.

    The database work of a chunk (resolving external ids, creating stubs, COPY into the staging
    table, the move into shop_event) runs on a helper thread over the caller's own connection, so
    it stays in the caller's transaction; at most one chunk is in flight. Ids are resolved with
    small indexed look-ups cached across chunks (or, for a file that names many, from the table's whole
    key list read once: _KeyCache), so the move itself joins nothing.

    The COPY of rows into a month loaded into a table of its own (a file import's first load) runs on a second
    thread, so that the server parses one chunk while the writer resolves and formats the next: at most one
    such COPY is in flight. It needs no order with the writer's statements but their own (psycopg holds the
    connection's lock for a whole COPY, so a statement of the writer's waits for it): those tables have no
    unique key to fail on, and no savepoint is open meanwhile (the writer waits for the COPY before it writes
    rows any other way).
    """

    def __init__(self, *, bulk_load=False):
        self.result = StoreResult()
        self._pool = None
        self._pending = None
        self._copier = None  # the thread of the first loads' COPYs
        self._copying = None  # the COPY in flight there
        self._now = timezone.now()
        self._ids = {}  # table -> (external ids met so far, their primary keys)
        self._new_source = {}
        self._bulk_load = bulk_load  # may a month without a partition be loaded into a table of its own?
        self._partitioned = None  # is shop_event partitioned (known at the first chunk)?
        self._routed = set()  # the months met so far: a partition covers them, or they are in _loads
        self._loads = {}  # month -> its standalone table, attached by finish()

    def add(self, frame):
        """Queue a chunk of rows (a DataFrame with STAGE_COLUMNS) for writing."""
        if frame.empty:
            return
        self._wait()
        if self._pool is None:
            connection.ensure_connection()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-writer")
        self._pending = self._pool.submit(self._write_chunk, connection.connection, frame)
        self.result.received += len(frame)
        self.result.types.update(frame["type"].astype(str).unique())

    def _write_chunk(self, raw, frame):
        frame = frame.drop_duplicates(["source", "client_event_id", "occurred_at"])
        with raw.cursor() as cursor:
            if self._partitioned is None:
                self._partitioned = partitions.partitioned(cursor)
                if self._partitioned:
                    # Before any id is taken: the purchase summary's refresh waits for the writers that hold
                    # this lock on shop_event, and a load into standalone tables would otherwise hold none.
                    cursor.execute("LOCK TABLE ONLY shop_event IN ROW EXCLUSIVE MODE")  # ONLY: not DEFAULT
            frame = frame.assign(
                customer_id=self._resolve(cursor, "shop_customer", frame["customer"]),
                item_id=self._resolve(cursor, "shop_item", frame["item"]),
            )
            loaded = 0
            if self._partitioned:
                frame, loaded = self._load_new_months(raw, cursor, frame)
                if frame.empty:
                    return loaded
            self._copy_wait()  # no savepoint of _write_rows while a COPY of the loads is in flight
            return loaded + self._write_rows(cursor, frame)

    def _load_new_months(self, raw, cursor, frame):
        """Queue the COPY of the rows of months loaded into tables of their own; return the other rows and the
        count queued."""
        months = partitions.month_of(frame["occurred_at"])
        self._route(cursor, months.unique())
        loading = months.isin(list(self._loads))
        if not loading.any():
            return frame, 0
        # No unique index to stop an id repeated from an earlier chunk: finish() removes repeats when it builds
        # the key.
        copies = [
            (
                f'COPY "{self._loads[month]}" ({_STAGED}, received_at) FROM STDIN (FORMAT csv)',
                _csv_payload(rows, self._now),
            )
            for month, rows in frame[loading].groupby(months[loading])
        ]
        self._copy_wait()
        if self._copier is None:
            self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-copy")
        self._copying = self._copier.submit(_copy_all, raw, copies)
        return frame[~loading], int(loading.sum())

    def _copy_wait(self):
        """Wait for the COPY in flight, if any (re-raising its error)."""
        if self._copying is not None:
            future, self._copying = self._copying, None
            future.result()

    def _route(self, cursor, months):
        """Make sure each new month has a partition, or (a file import's month without one) a table to load."""
        new = sorted(int(m) for m in months if int(m) not in self._routed)
        self._routed.update(new)
        if not self._bulk_load:
            partitions.partitions_ensure(cursor, new)
            return
        wanted = [m for m in new if partitions.month_in_range(m)]
        missing = [m for m in wanted if m not in partitions.months_covered(cursor, wanted)]
        for month in missing:  # in order, all before any is created (event_partitions.partitions_ensure)
            partitions.month_lock(cursor, month)
        missing = [m for m in missing if m not in partitions.months_covered(cursor, missing)]
        for month in missing:
            if partitions.default_holds(cursor, month):
                partitions.partition_create(cursor, month)  # moves those rows in; this file goes row by row
            else:
                self._loads[month] = partitions.month_table(month)
                month_load_begin(cursor, self._loads[month])

    def _write_rows(self, cursor, frame):
        """Write rows into shop_event (their partitions exist, or they belong in DEFAULT)."""
        if len(frame) <= SMALL_CHUNK:
            cursor.execute(_INSERT_ARRAYS, _array_params(frame, self._now))
            return cursor.rowcount
        payload = _csv_payload(frame, self._now)
        if self._sources_new(cursor, frame["source"].unique()):
            # A source with no events yet (a first import): COPY straight into shop_event, 2x faster
            # than INSERT ... SELECT. An event id seen in an earlier chunk, or stored by a concurrent
            # writer meanwhile, makes the unique index stop the COPY; the chunk then goes the
            # ON CONFLICT way below.
            cursor.execute("SAVEPOINT event_chunk")
            try:
                _copy(cursor, f"COPY shop_event ({_STAGED}, received_at) FROM STDIN (FORMAT csv)", payload)
                cursor.execute("RELEASE SAVEPOINT event_chunk")
                return len(frame)
            except psycopg.errors.UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT event_chunk")
        cursor.execute(_STAGE_DDL)
        _copy(cursor, f"COPY event_stage ({_STAGED}, received_at) FROM STDIN (FORMAT csv)", payload)
        cursor.execute(_MOVE_EVENTS)
        stored = cursor.rowcount
        cursor.execute("TRUNCATE event_stage")
        return stored

    def _sources_new(self, cursor, sources):
        """True when none of these sources had events when this writer first met them."""
        for source in sources:
            if source not in self._new_source:
                # Without keeping the look's locks of every partition (DEFAULT's would stop others' ATTACH).
                seen = partitions.look(cursor, "SELECT EXISTS (SELECT 1 FROM shop_event WHERE source = %s)", [source])
                self._new_source[source] = not seen
        return all(self._new_source[source] for source in sources)

    def _resolve(self, cursor, table, external_ids):
        """Primary keys for a column of external ids (Int64, NA where the id is null), creating stubs for the
        unknown ones."""
        cache = self._ids.get(table)
        if cache is None:
            cache = self._ids[table] = _KeyCache()
        keys, unknown = cache.keys_of(external_ids)
        if unknown and not cache.preloaded and len(unknown) >= PRELOAD_MIN_UNKNOWN:
            # A file that names many ids at its first chunk (a month's export of a large shop names most of its
            # customers): reading the whole table's keys at once beats looking each chunk's up by index.
            if cache.preload(cursor, table):
                keys, unknown = cache.keys_of(external_ids)
        if unknown:
            cache.add(self._lookup(cursor, table, unknown))
            keys, unknown = cache.keys_of(external_ids)
        resolved = pd.Series(keys, index=external_ids.index, dtype="int64").astype("Int64")
        return resolved.mask(keys < 0)

    def _lookup(self, cursor, table, wanted):
        """(external id, key) of each wanted id, creating stubs for those not there."""
        cursor.execute(f"SELECT external_id, id FROM {table} WHERE external_id = ANY(%s)", [wanted])
        found = cursor.fetchall()
        have = {e for e, _ in found}
        missing = [e for e in wanted if e not in have]  # in the order met: stubs get their keys in file order
        if missing:
            cursor.execute(_STUBS[table], {"ids": missing, "now": self._now})
            created = cursor.fetchall()
            counter = "customers_created" if table == "shop_customer" else "items_created"
            setattr(self.result, counter, getattr(self.result, counter) + len(created))
            found += created
            if len(created) < len(missing):  # another writer created some at the same moment
                cursor.execute(f"SELECT external_id, id FROM {table} WHERE external_id = ANY(%s)", [missing])
                found += cursor.fetchall()
        return found

    def _wait(self):
        if self._pending is not None:
            future, self._pending = self._pending, None
            try:
                self.result.stored += future.result()  # re-raises the thread's error here
            except Exception:
                # A COPY that failed first aborted the transaction: its error is the one to tell. (Waited for: the
                # chunk's statements may fail the moment the COPY's lock is released, before its future is set.)
                copying = self._copying
                if copying is not None and copying.exception() is not None:
                    self._copying = None
                    raise copying.exception() from None
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # Never leave a chunk or a COPY in flight on the connection when the caller's transaction ends.
        if exc_info[0] is not None:
            wait([f for f in (self._pending, self._copying) if f is not None])
        self._shutdown()
        if self._loads and exc_info[0] is None:
            # Raised inside the caller's atomic block, so that it rolls back: never commit a month's rows in a
            # table that is not attached.
            raise RuntimeError("months were loaded into tables of their own and finish() was not called")

    def _shutdown(self):
        if self._pool is not None:
            self._pool.shutdown()  # waits for the chunk in flight, which waits for no COPY but the one before
            self._pool = None
        if self._copier is not None:
            self._copier.shutdown()
            self._copier = None

    def finish(self):
        """Wait for the last chunk, index and attach the months loaded into tables of their own; return the counts."""
        try:
            self._wait()
            self._copy_wait()
        finally:
            self._shutdown()
        if self._loads:
            with connection.connection.cursor() as cursor:
                for month, table in sorted(self._loads.items()):
                    self.result.stored -= month_load_finish(cursor, table, month)
            self._loads = {}
        return self.result


def _copy_all(raw, copies):
    with raw.cursor() as cursor:
        for statement, payload in copies:
            _copy(cursor, statement, payload)


def _copy(cursor, statement, payload):
    with cursor.copy(statement) as copy:
        for start in range(0, len(payload), COPY_BLOCK):
            copy.write(payload[start : start + COPY_BLOCK])


def _csv_payload(frame, now):
    """The chunk as COPY CSV, written by Arrow's C++ writer (~10x faster than row-by-row COPY)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    occurred_at = pd.to_datetime(frame["occurred_at"], utc=True).dt.tz_localize(None).astype("datetime64[us]")
    columns = {
        "customer_id": frame["customer_id"],
        "item_id": frame["item_id"],
        "type": frame["type"].astype(str),
        "quantity": pd.to_numeric(frame["quantity"]).astype("int64"),
        "value": pd.to_numeric(frame["value"], errors="coerce").astype("float64"),
        "discount": pd.to_numeric(frame["discount"]).astype("float64").fillna(0.0),
        # Written as UTC wall time (Arrow writes a zone-less timestamp much faster than a zoned one);
        # Django keeps the connection's time zone at UTC.
        "occurred_at": occurred_at,
        "source": frame["source"].astype(str),
        "client_event_id": frame["client_event_id"].astype(str),
        "attributes": [json.dumps(a) if a else None for a in frame["attributes"].tolist()],
        "order_id": _order_ids(frame),
        "received_at": pd.Timestamp(now).tz_convert("UTC").tz_localize(None).as_unit("us"),
    }
    table = pa.Table.from_pandas(pd.DataFrame(columns, index=frame.index), preserve_index=False)
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return buffer.getvalue()


def _array_params(frame, now):
    """The chunk as one array per column, for _INSERT_ARRAYS (the same values _csv_payload writes)."""
    value = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    order_ids = _order_ids(frame)
    return {
        "c": frame["customer_id"].astype("int64").tolist(),
        "i": [None if pd.isna(i) else int(i) for i in frame["item_id"].tolist()],
        "t": frame["type"].astype(str).tolist(),
        "q": pd.to_numeric(frame["quantity"]).astype("int64").tolist(),
        "v": [None if math.isnan(v) else v for v in value.tolist()],
        "d": pd.to_numeric(frame["discount"]).astype("float64").fillna(0.0).tolist(),
        "o": pd.to_datetime(frame["occurred_at"], utc=True).dt.to_pydatetime().tolist(),
        "s": frame["source"].astype(str).tolist(),
        "e": frame["client_event_id"].astype(str).tolist(),
        "a": [json.dumps(a) if a else None for a in frame["attributes"].tolist()],
        "r": [None if pd.isna(o) else str(o) for o in order_ids.tolist()],
        "now": now,
    }


def _order_ids(frame):
    """The chunk's order ids as text, None where an event has none (or the frame has no such column)."""
    if "order_id" not in frame:
        return pd.Series(None, index=frame.index, dtype="string")
    return frame["order_id"].astype("string")


class PortableEventWriter:
    """The same contract through the ORM, for SQLite in embedded mode."""

    def __init__(self):
        self.result = StoreResult()
        self._frames = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def add(self, frame):
        if not frame.empty:
            self._frames.append(frame)
            self.result.received += len(frame)
            self.result.types.update(frame["type"].astype(str).unique())  # attribution is queued by them

    def finish(self):
        if not self._frames:
            return self.result
        frame = pd.concat(self._frames, ignore_index=True)
        self._frames = []
        customers = _ensure(Customer, frame["customer"].unique(), self.result, "customers_created")
        items = _ensure(Item, frame["item"].dropna().unique(), self.result, "items_created")
        before = Event.objects.count()
        Event.objects.bulk_create(
            [
                Event(
                    customer_id=customers[row["customer"]],
                    item_id=items.get(row["item"]),
                    type=row["type"],
                    quantity=row["quantity"],
                    value=_none_if_nan(row["value"]),
                    discount=row["discount"],
                    occurred_at=row["occurred_at"].to_pydatetime(),
                    source=row["source"],
                    client_event_id=row["client_event_id"],
                    attributes=row["attributes"] or None,
                    order_id=_none_if_nan(row.get("order_id")),
                )
                for row in frame.to_dict("records")
            ],
            batch_size=500,
            ignore_conflicts=True,
        )
        self.result.stored = Event.objects.count() - before
        return self.result


def _ensure(model, external_ids, result, counter):
    """Map external ids to primary keys, creating stubs for the unknown ones."""
    external_ids = [str(e) for e in external_ids]
    known = ids_by_external_id(model, external_ids)
    missing = [e for e in external_ids if e not in known]
    model.objects.bulk_create(
        [model(external_id=e, is_stub=True) for e in missing], batch_size=500, ignore_conflicts=True
    )
    setattr(result, counter, len(missing))
    known.update(ids_by_external_id(model, missing))
    return known


def ids_by_external_id(model, external_ids):
    # SQLite caps the number of query parameters; PostgreSQL takes them all at once.
    chunk = len(external_ids) or 1 if connection.vendor == "postgresql" else 900
    found = {}
    for start in range(0, len(external_ids), chunk):
        part = external_ids[start : start + chunk]
        found.update(model.objects.filter(external_id__in=part).values_list("external_id", "id"))
    return found
