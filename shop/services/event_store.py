"""Bulk writes of events, shared by the REST API and the file import.

Rows arrive as a pandas DataFrame naming customers and items by their
external ids (STAGE_COLUMNS). On PostgreSQL each chunk is COPYed into a
temporary staging table, stub customers and items are created for unknown
ids, and the rows move into shop_event with INSERT ... SELECT ... ON CONFLICT
DO NOTHING, so a retried batch or a re-imported file stores nothing twice. Everything happens in the caller's transaction: a failure leaves
nothing half-written. On other databases the same contract is met with the
ORM (slower, for the embedded development mode only).

Figures: docs/benchmarks.md (`python bench/ingest.py`).
"""

import io
import json
import math
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

import pandas as pd
from django.db import connection
from django.utils import timezone

from shop.models import Customer, Event, Item

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
]


@dataclass
class StoreResult:
    received: int = 0
    stored: int = 0
    customers_created: int = 0
    items_created: int = 0

    @property
    def duplicates(self):
        return self.received - self.stored


def event_writer():
    """The writer for the configured database."""
    if connection.vendor == "postgresql":
        return PostgresEventWriter()
    return PortableEventWriter()


def _none_if_nan(value):
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return None
    return value


_STAGE_DDL = """
    CREATE TEMP TABLE IF NOT EXISTS event_stage (
        customer text NOT NULL, item text, type text NOT NULL, quantity integer NOT NULL,
        value numeric(12, 2), discount numeric(12, 2) NOT NULL, occurred_at timestamp NOT NULL,
        source text NOT NULL, client_event_id text NOT NULL, attributes jsonb
    ) ON COMMIT DROP
"""
_NEW_CUSTOMERS = """
    INSERT INTO shop_customer (external_id, email, name, attributes, demographics, marketing_consent,
        consent_source, suppressed, suppressed_reason, time_zone, is_stub, created_at, updated_at)
    SELECT DISTINCT customer, '', '', '{}'::jsonb, '{}'::jsonb, false, '', false, '', 'UTC', true, %(now)s, %(now)s
    FROM event_stage
    ON CONFLICT (external_id) DO NOTHING
"""
_NEW_ITEMS = """
    INSERT INTO shop_item (external_id, title, category_path, brand, active, in_stock, image_url, attributes,
        is_stub, created_at, updated_at)
    SELECT DISTINCT item, '', '', '', true, true, '', '{}'::jsonb, true, %(now)s, %(now)s
    FROM event_stage WHERE item IS NOT NULL
    ON CONFLICT (external_id) DO NOTHING
"""
_MOVE_EVENTS = """
    INSERT INTO shop_event (customer_id, item_id, type, quantity, value, discount, occurred_at, source,
        client_event_id, attributes, received_at)
    SELECT c.id, i.id, s.type, s.quantity, s.value, s.discount, s.occurred_at AT TIME ZONE 'UTC', s.source,
        s.client_event_id, s.attributes, %(now)s
    FROM event_stage s
    JOIN shop_customer c ON c.external_id = s.customer
    LEFT JOIN shop_item i ON i.external_id = s.item
    ON CONFLICT (source, client_event_id) DO NOTHING
"""


class PostgresEventWriter:
    """Writes each chunk while the caller prepares the next one.

    The database work of a chunk (COPY into the staging table, stub customers and items, the move
    into shop_event) runs on a helper thread over the caller's own connection, so it stays in the
    caller's transaction; at most one chunk is in flight. On 2 cores this hides the Python side
    (checking, CSV encoding) behind PostgreSQL's index maintenance.
    """

    def __init__(self):
        self.result = StoreResult()
        self._pool = None
        self._pending = None
        self._now = timezone.now()

    def add(self, frame):
        """Queue a chunk of rows (a DataFrame with STAGE_COLUMNS) for writing."""
        if frame.empty:
            return
        payload = _csv_payload(frame)
        self._wait()
        if self._pool is None:
            connection.ensure_connection()
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="event-writer")
        self._pending = self._pool.submit(self._write_chunk, connection.connection, payload)
        self.result.received += len(frame)

    def _write_chunk(self, raw, payload):
        params = {"now": self._now}
        with raw.cursor() as cursor:
            cursor.execute(_STAGE_DDL)
            with cursor.copy(f"COPY event_stage ({', '.join(STAGE_COLUMNS)}) FROM STDIN (FORMAT csv)") as copy:
                for start in range(0, len(payload), COPY_BLOCK):
                    copy.write(payload[start : start + COPY_BLOCK])
            counts = []
            for statement in (_NEW_CUSTOMERS, _NEW_ITEMS, _MOVE_EVENTS):
                cursor.execute(statement, params)
                counts.append(cursor.rowcount)
            cursor.execute("TRUNCATE event_stage")
        return counts

    def _wait(self):
        if self._pending is not None:
            customers, items, stored = self._pending.result()  # re-raises the thread's error here
            self._pending = None
            self.result.customers_created += customers
            self.result.items_created += items
            self.result.stored += stored

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        # Never leave a chunk in flight on the connection when the caller's transaction ends.
        if self._pending is not None and exc_info[0] is not None:
            wait([self._pending])
        self._shutdown()

    def _shutdown(self):
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def finish(self):
        """Wait for the last chunk; return the counts."""
        try:
            self._wait()
        finally:
            self._shutdown()
        return self.result


def _csv_payload(frame):
    """The chunk as COPY CSV, written by Arrow's C++ writer (~10x faster than row-by-row COPY)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    occurred_at = pd.to_datetime(frame["occurred_at"], utc=True).dt.tz_localize(None).astype("datetime64[us]")
    columns = {
        "customer": frame["customer"].astype(str),
        "item": frame["item"].astype(object).where(frame["item"].notna(), None),
        "type": frame["type"].astype(str),
        "quantity": pd.to_numeric(frame["quantity"]).astype("int64"),
        "value": pd.to_numeric(frame["value"], errors="coerce").astype("float64"),
        "discount": pd.to_numeric(frame["discount"]).astype("float64").fillna(0.0),
        # Staged as UTC wall time: Arrow writes a zone-less timestamp much faster than a zoned one.
        "occurred_at": occurred_at,
        "source": frame["source"].astype(str),
        "client_event_id": frame["client_event_id"].astype(str),
        "attributes": [json.dumps(a) if a else None for a in frame["attributes"].tolist()],
    }
    table = pa.Table.from_pandas(pd.DataFrame(columns, index=frame.index), preserve_index=False)
    buffer = io.BytesIO()
    pa_csv.write_csv(table, buffer, pa_csv.WriteOptions(include_header=False, quoting_style="needed"))
    return buffer.getvalue()


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
    model.objects.bulk_create([model(external_id=e, is_stub=True) for e in missing], batch_size=500, ignore_conflicts=True)
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
