import csv
import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from shop.models import Customer, Event, ImportRun, Item
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = """\
cust,sku,ts,qty,amount,kind
c1,i1,2024-01-02 10:00:00,1,9.99,purchase
c2,i2,2024-01-02T11:00:00+01:00,2,5,view
c3,,2024-01-02,1,,cart
c4,i4,notadate,1,3,purchase
c5,i5,2024-01-03,-1,3,purchase
c6,i6,2024-01-03,1,abc,purchase
c7,i7,2024-01-03,1,3,unknownthing
,i8,2024-01-03,1,3,cart
c1,i1,2024-01-02 10:00:00,1,9.99,purchase
c9,i9,2024-01-04,1.5,3,cart
"""
MAP = [
    "--map",
    "customer=cust",
    "--map",
    "item=sku",
    "--map",
    "occurred_at=ts",
    "--map",
    "quantity=qty",
    "--map",
    "value=amount",
    "--map",
    "type=kind",
]


REPORT_HEADER_ONLY = [["line", "column", "value", "reason"]]


def write(tmp_path, text, name="events.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def report_rows(path):
    with open(path, newline="") as handle:
        return list(csv.reader(handle))


def run_import(path, *extra):
    call_command("import_events", str(path), *extra, verbosity=0)


def test_it_stores_good_rows_and_reports_bad_ones_by_line(tmp_path):
    # given a CSV with good rows and bad rows
    path = write(tmp_path, GOOD_AND_BAD)
    report = tmp_path / "report.csv"
    # when it is imported
    run_import(path, *MAP, "--report", str(report))
    # then the good rows are stored, and each bad one is in the report with its line
    assert Event.objects.count() == 3  # c1 twice (a true repeat is kept) and c2
    assert report_rows(report) == [
        ["line", "column", "value", "reason"],
        ["4", "sku", "", "missing item (required for this event type)"],
        ["5", "ts", "notadate", "unparseable date"],
        ["6", "qty", "-1", "negative quantity"],
        ["7", "amount", "abc", "value is not a number"],
        [
            "8",
            "kind",
            "unknownthing",
            "unknown event type (expected one of: view, cart, purchase, coupon_redemption, not_interested)",
        ],
        ["9", "cust", "", "missing customer"],
        ["11", "qty", "1.5", "quantity is not a whole number"],
    ]
    view = Event.objects.get(type="view")
    assert view.occurred_at.isoformat() == "2024-01-02T10:00:00+00:00"  # the +01:00 offset is honoured
    assert view.quantity == 2


def test_a_reimport_stores_nothing_twice(tmp_path):
    path = write(tmp_path, GOOD_AND_BAD)
    run_import(path, *MAP)
    first = set(Event.objects.values_list("client_event_id", flat=True))
    run_import(path, *MAP)
    assert set(Event.objects.values_list("client_event_id", flat=True)) == first
    assert Event.objects.count() == 3
    runs = ImportRun.objects.filter(kind="events").order_by("created_at")
    assert [(r.rows_stored, r.rows_duplicate, r.rows_rejected) for r in runs] == [(3, 0, 7), (0, 3, 7)]


def test_it_creates_the_customers_and_items_named(tmp_path):
    run_import(write(tmp_path, GOOD_AND_BAD), *MAP)
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"c1", "c2"}
    assert set(Item.objects.values_list("external_id", flat=True)) == {"i1", "i2"}
    assert Customer.objects.get(external_id="c1").is_stub


def test_it_reads_parquet_with_an_event_id_and_a_fixed_type(tmp_path):
    frame = pd.DataFrame(
        {
            "household": [1, 2, 2],
            "product": [10, 20, None],
            "when": pd.to_datetime(["2024-01-01 10:00", "2024-01-02 11:00", "2024-01-03 12:00"]),
            "id": ["a", "b", "c"],
            "sales": [1.5, 2.0, 3.25],
        }
    )
    path = tmp_path / "tx.parquet"
    frame.to_parquet(path)
    report = tmp_path / "r.csv"
    run_import(
        path,
        "--type",
        "purchase",
        "--map",
        "customer=household",
        "--map",
        "item=product",
        "--map",
        "occurred_at=when",
        "--map",
        "event_id=id",
        "--map",
        "value=sales",
        "--source",
        "pos",
        "--report",
        str(report),
    )
    assert sorted(Event.objects.values_list("client_event_id", "customer__external_id", "item__external_id")) == [
        ("a", "1", "10"),
        ("b", "2", "20"),
        ("c", "2", None),  # a purchase may name no item
    ]
    assert report_rows(report) == REPORT_HEADER_ONLY
    assert Event.objects.get(client_event_id="a").source == "pos"


def test_it_reports_bad_numbers_and_dates_of_a_parquet_file_as_written(tmp_path):
    # given a Parquet file with typed columns: integer quantities, float values, timestamps
    frame = pd.DataFrame(
        {
            "customer": ["c1", "c2", "c3", "c4", "c5"],
            "item": ["i1", "i2", "i3", "i4", "i5"],
            "quantity": [1, -2, 2**31, 3, 1],
            "value": [1.5, 2.0, 3.0, 1e10, float("nan")],
            "occurred_at": pd.to_datetime(
                ["2024-01-01 10:00", "2024-01-01 11:00", None, "2024-01-01 12:00", "2024-01-02 09:00"]
            ),
        }
    )
    path = tmp_path / "typed.parquet"
    frame.to_parquet(path)
    report = tmp_path / "r.csv"
    # when it is imported
    run_import(path, "--type", "purchase", "--report", str(report))
    # then each bad value is reported as the file has it, and the good rows are stored
    assert report_rows(report)[1:] == [
        ["3", "quantity", "-2", "negative quantity"],
        ["4", "occurred_at", "", "unparseable date"],
        ["4", "quantity", "2147483648", "quantity is not a whole number"],
        ["5", "value", "10000000000.0", "value is out of range"],
    ]
    assert sorted(Event.objects.values_list("customer__external_id", "value")) == [
        ("c1", Decimal("1.50")),
        ("c5", None),
    ]


@pytest.mark.parametrize(
    "content, args, message",
    [
        ("", [], "the file is empty"),
        ("cust,sku,ts\n", ["--map", "customer=cust"], "has a header but no rows"),
        (
            "a,b\n1,2\n",
            ["--type", "purchase", "--map", "customer=x"],
            "column(s) 'x' (for customer) not in the file; its columns are: a, b",
        ),
        ("customer,ts\n1,2024-01-01\n", [], "no column for occurred_at, type (or give --type)"),
        ("customer,occurred_at\n1,2024-01-01\n", ["--type", "refund"], "--type 'refund' is not an event type"),
        (
            "customer,occurred_at\n1,2024-01-01\n",
            ["--type", "view", "--map", "colour=x"],
            "unknown field(s) in --map: colour",
        ),
        ("customer,occurred_at\n1,2024-01-01\n", ["--map", "customer"], "expected FIELD=COLUMN"),
    ],
)
def test_a_file_that_is_not_what_it_claims_fails_whole(tmp_path, content, args, message):
    EventFactory()
    path = write(tmp_path, content)
    with pytest.raises(CommandError) as failure:
        run_import(path, *args)
    assert message in str(failure.value)
    assert Event.objects.count() == 1  # what was there is untouched, nothing added


def test_binary_and_fake_parquet_files_fail_with_one_message(tmp_path):
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(CommandError, match="not a CSV file"):
        run_import(binary, "--type", "view")
    fake = write(tmp_path, "customer,occurred_at\n1,2024-01-01\n", name="data.parquet")
    with pytest.raises(CommandError, match="not a Parquet file"):
        run_import(fake, "--type", "view")
    with pytest.raises(CommandError, match="no such file"):
        run_import(tmp_path / "missing.csv", "--type", "view")
    assert Event.objects.count() == 0


def test_a_failure_midway_stores_nothing(tmp_path, monkeypatch):
    # given a good file and a database write that fails after the rows were staged
    from shop.services import event_store

    path = write(tmp_path, GOOD_AND_BAD)
    writer_class = type(event_store.event_writer())

    def broken_finish(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(writer_class, "finish", broken_finish)
    # when the import runs, then it fails and nothing at all was stored
    with pytest.raises(RuntimeError):
        run_import(path, *MAP)
    assert Event.objects.count() == Customer.objects.count() == Item.objects.count() == 0


def test_without_a_report_path_rejections_still_land_in_a_report(tmp_path, capsys, settings):
    settings.VAR_DIR = tmp_path / "var"
    call_command("import_events", str(write(tmp_path, GOOD_AND_BAD)), *MAP)
    out = capsys.readouterr().out
    assert "10 rows: 3 stored, 0 already there, 7 rejected" in out
    report = Path(out.split("Report: ")[1].strip())
    assert report.parent == tmp_path / "var" / "import-reports" and len(report_rows(report)) == 8


def test_an_event_id_repeated_in_a_later_chunk_is_stored_once(tmp_path, monkeypatch):
    # given a file whose chunks (of 2 rows here) repeat an event id across chunk borders
    from shop.services import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    path = write(
        tmp_path,
        "event_id,customer,item,occurred_at\nA,c1,i1,2024-01-01\nB,c1,i2,2024-01-01\n"
        "A,c1,i1,2024-01-01\nC,c2,i3,2024-01-02\nB,c1,i2,2024-01-01\n",
    )
    # when it is imported, then each id is stored once and the repeats count as duplicates
    run_import(path, "--type", "view")
    assert sorted(Event.objects.values_list("client_event_id", flat=True)) == ["A", "B", "C"]
    run = ImportRun.objects.get()
    assert (run.rows_total, run.rows_stored, run.rows_duplicate) == (5, 3, 2)


# --- a first import of a month: a table of its own, COPYed bare, indexed once, attached ----------------

postgres_only = pytest.mark.skipif(connection.vendor != "postgresql", reason="the bulk load is PostgreSQL's")
JANUARY = "shop_event_y2024m01"


def event_table_schema(table="shop_event"):
    """The indexes and constraints of a table, as the catalogue describes them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
        indexes = sorted(cursor.fetchall())
        cursor.execute(
            "SELECT conname, contype, pg_get_constraintdef(oid), condeferrable, condeferred, conindid::regclass::text "
            "FROM pg_constraint WHERE conrelid = %s::regclass",
            [table],
        )
        return indexes, sorted(cursor.fetchall())


def partition_indexes(table):
    """The parent's indexes that have their partition's index on `table` (attached)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE x.indrelid = %s::regclass ORDER BY 1",
            [table],
        )
        return [name for (name,) in cursor.fetchall()]


def partitions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'shop_event'::regclass")
        return sorted(name for (name,) in cursor.fetchall())


def monthly_partitions_drop():
    """Drop every monthly partition of shop_event (they hold no rows when a test starts). A test that committed
    (transaction=True) leaves the partitions it created behind: the flush after it empties tables, it drops none.
    A first load needs a month without a partition, so each test of one starts from none."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'shop_event'::regclass AND c.relname ~ '^shop_event_y[0-9]{4}m[0-9]{2}$'"
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f'SELECT EXISTS (SELECT 1 FROM "{name}")')
            if cursor.fetchone()[0]:
                raise RuntimeError(f"{name} holds events at the start of a test")
            cursor.execute(f'DROP TABLE "{name}"')


@pytest.fixture
def bulk_loads(monkeypatch):
    """The tables each writer loaded a month into (empty: every row went row by row); no monthly partition
    exists when the test starts."""
    from shop.services import event_store

    monthly_partitions_drop()
    begin, taken = event_store.month_load_begin, []

    def spy(cursor, table):
        taken.append(table)
        return begin(cursor, table)

    monkeypatch.setattr(event_store, "month_load_begin", spy)
    return taken


@postgres_only
def test_a_first_import_of_a_month_gives_its_partition_every_index_of_the_parent(tmp_path, bulk_loads):
    # given an events table with what a later migration might add: a partial index on an expression
    with connection.cursor() as cursor:
        cursor.execute("CREATE INDEX event_later ON shop_event (lower(client_event_id)) WHERE quantity > 1")
    before = event_table_schema()
    # when a file of January 2024, a month without a partition, is imported
    run_import(write(tmp_path, GOOD_AND_BAD), *MAP)
    # then the month went the bulk way, into its own partition, which has each of the parent's indexes
    assert bulk_loads == [JANUARY]
    assert Event.objects.count() == 3 and JANUARY in partitions()
    assert partition_indexes(JANUARY) == [
        "event_customer_time",
        "event_item",
        "event_later",
        "event_order",
        "event_time_brin",
        "event_unique_per_source",
        "shop_event_pkey",
    ]
    assert event_table_schema() == before


@postgres_only
def test_an_id_repeated_across_chunks_of_a_first_import_is_stored_once(tmp_path, monkeypatch, bulk_loads):
    # given a file whose chunks (of 2 rows here) repeat event ids, the first time with another customer
    from shop.services import tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    path = write(
        tmp_path,
        "event_id,customer,item,occurred_at\nA,c1,i1,2024-01-01\nB,c1,i2,2024-01-01\n"
        "A,c9,i1,2024-01-01\nC,c2,i3,2024-01-02\nB,c1,i2,2024-01-01\nA,c1,i1,2024-01-01\n",
    )
    # when it is imported into the empty table
    run_import(path, "--type", "view")
    # then the bulk load stored each id once, the first one in the file, and counted the repeats
    assert bulk_loads == [JANUARY]
    stored = Event.objects.order_by("client_event_id").values_list("client_event_id", "customer__external_id")
    assert list(stored) == [("A", "c1"), ("B", "c1"), ("C", "c2")]
    run = ImportRun.objects.get()
    assert (run.rows_total, run.rows_stored, run.rows_duplicate) == (6, 3, 3)


@postgres_only
@pytest.mark.django_db(transaction=True)
def test_a_failure_midway_through_a_first_import_leaves_no_rows_and_no_partition(tmp_path, monkeypatch, bulk_loads):
    # given a file of 4 chunks whose third fails in the database (a negative quantity breaks the CHECK)
    from shop.services import event_store, tables

    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    payload, chunks = event_store._csv_payload, []

    def third_chunk_breaks(frame, now):
        chunks.append(frame)
        return payload(frame.assign(quantity=-1) if len(chunks) == 3 else frame, now)

    monkeypatch.setattr(event_store, "_csv_payload", third_chunk_breaks)
    before, tables_before = event_table_schema(), partitions()
    lines = "".join(f"E{n},c{n},i{n},2024-01-0{n + 1}\n" for n in range(8))
    # when it is imported, then the import fails
    with pytest.raises(psycopg.errors.CheckViolation):
        run_import(write(tmp_path, "event_id,customer,item,occurred_at\n" + lines), "--type", "view")
    # and the two chunks COPYed before the failure are gone with the month's table
    assert len(chunks) == 3 and bulk_loads == [JANUARY]
    assert Event.objects.count() == Customer.objects.count() == Item.objects.count() == 0
    assert event_table_schema() == before and partitions() == tables_before
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [JANUARY])
        assert cursor.fetchone()[0] is None


@postgres_only
def test_an_import_into_a_month_with_events_goes_row_by_row(tmp_path, bulk_loads):
    # given an event of January 2024 (stored by the ORM: in DEFAULT) and a file that repeats it
    stored = EventFactory(source="file:events.csv", client_event_id="A", occurred_at="2024-01-01T00:00:00Z")
    path = write(tmp_path, "event_id,customer,item,occurred_at\nA,c1,i1,2024-01-01\nB,c1,i2,2024-01-01\n")
    # when it is imported
    run_import(path, "--type", "view")
    # then the month's partition was created with the stored event moved in, and the file went row by row,
    # the id already stored recognised through the unique index
    assert bulk_loads == []
    assert Event.objects.get(client_event_id="A").id == stored.id
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM shop_event GROUP BY 1")
        assert cursor.fetchall() == [(JANUARY, 2)]
    run = ImportRun.objects.get()
    assert (run.rows_stored, run.rows_duplicate) == (1, 1)


def test_an_api_batch_never_takes_the_table(bulk_loads):
    # given an empty events table, when a batch comes through the API's service
    from shop.services.event_batches import events_store_batch

    event = {"event_id": "A", "customer": "c1", "item": "i1", "type": "view", "occurred_at": "2024-01-01T10:00:00Z"}
    result = events_store_batch(source="web", events=[event])
    # then it is stored row by row, into the month's partition created for it
    assert result.stored == 1 and bulk_loads == []
    if connection.vendor == "postgresql":
        assert JANUARY in partitions()


@postgres_only
def test_a_bulk_load_never_commits_a_month_it_did_not_attach():
    # given a writer that loaded a month into a table of its own
    from shop.services.event_rows import FIELDS, RowChecker
    from shop.services.event_store import event_writer

    monthly_partitions_drop()
    before = event_table_schema()
    frame = pd.DataFrame([{"customer": "c1", "item": "i1", "type": "view", "occurred_at": "2024-01-01"}])
    rows = RowChecker(mapping={f: f for f in FIELDS if f in frame}, source="test").check(frame, 2).rows
    # when its caller's block ends without finish(), then the block fails and rolls back
    with pytest.raises(RuntimeError, match="finish"), transaction.atomic(), event_writer(bulk_load=True) as writer:
        writer.add(rows)
    assert Event.objects.count() == 0
    assert event_table_schema() == before and JANUARY not in partitions()


def test_it_reports_rows_with_the_wrong_number_of_fields_and_stores_none_of_them(tmp_path):
    # given a CSV with a row with two fields too many and a row with one too few
    path = write(
        tmp_path,
        "customer,item,type,occurred_at,quantity,value,discount\n"
        "nq-13,826249,purchase,2017-06-01T10:00:00Z,1,2,0\n"
        "nq-14,1,826249,purchase,2017-06-01T10:00:00Z,1,1,5,0\n"
        "nq-15,826249,purchase,2017-06-01T10:00:00Z,1,2\n",
    )
    report = tmp_path / "report.csv"
    # when it is imported
    run_import(path, "--report", str(report))
    # then only the good row is stored, and each bad one is reported with its line
    assert list(Event.objects.values_list("customer__external_id", "value", "discount")) == [
        ("nq-13", Decimal("2.00"), Decimal("0.00"))
    ]
    assert report_rows(report)[1:] == [
        ["3", "", "9 fields", "9 fields where the header has 7"],
        ["4", "", "6 fields", "6 fields where the header has 7"],
    ]


def test_it_rejects_events_dated_far_in_the_future_or_before_the_earliest_date(tmp_path, settings):
    # given events in 2100, 2999, year 1 and 774, a real 2008 one, and one tomorrow (within the margin)
    settings.EVENT_MAX_FUTURE_DAYS = 2
    tomorrow = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = write(
        tmp_path,
        "customer,item,type,occurred_at\n"
        "c1,i1,view,2100-01-01\n"
        "c2,i1,view,2999-06-01T10:00:00Z\n"
        "c3,i1,view,0001-01-01\n"
        "c4,i1,view,0774-05-05\n"
        "c5,i1,view,2008-03-01\n"
        f"c6,i1,view,{tomorrow}\n",
    )
    report = tmp_path / "report.csv"
    # when the file is imported
    run_import(path, "--report", str(report))
    # then the outliers are reported with their reason, and the others stored
    assert report_rows(report)[1:] == [
        ["2", "occurred_at", "2100-01-01", "date more than 2 days in the future"],
        ["3", "occurred_at", "2999-06-01T10:00:00Z", "date more than 2 days in the future"],
        ["4", "occurred_at", "0001-01-01", "date before 2000-01-01"],
        ["5", "occurred_at", "0774-05-05", "date before 2000-01-01"],
    ]
    assert sorted(Event.objects.values_list("customer__external_id", flat=True)) == ["c5", "c6"]


def test_it_rejects_a_decimal_comma_and_negative_amounts_with_their_row_and_column(tmp_path):
    # given a CSV with a decimal comma, an exponent, and negative value, discount and quantity
    path = write(
        tmp_path,
        "customer,item,type,occurred_at,quantity,value,discount\n"
        'c1,i1,purchase,2024-01-02,1,"1,5",0\n'
        "c2,i1,purchase,2024-01-02,1,1e3,0\n"
        "c3,i1,purchase,2024-01-02,1,-4.00,0\n"
        "c4,i1,purchase,2024-01-02,1,4.00,-1\n"
        "c5,i1,purchase,2024-01-02,-1,4.00,0\n"
        "c6,i1,purchase,2024-01-02,2,0.5,0.25\n",
    )
    report = tmp_path / "report.csv"
    # when it is imported
    run_import(path, "--report", str(report))
    # then each is reported with its line and column, and only the plain row is stored
    assert report_rows(report)[1:] == [
        ["2", "value", "1,5", "value has a decimal comma (write 1.5, not 1,5)"],
        ["3", "value", "1e3", "value is not a number"],
        ["4", "value", "-4.00", "negative value"],
        ["5", "discount", "-1", "negative discount"],
        ["6", "quantity", "-1", "negative quantity"],
    ]
    assert list(Event.objects.values_list("customer__external_id", "value", "discount")) == [
        ("c6", Decimal("0.50"), Decimal("0.25"))
    ]


def test_it_stores_an_order_level_purchase_log_without_items(tmp_path):
    # given a purchase log with customer, date, amount and order id, and no item column
    path = write(
        tmp_path,
        "customer,date,amount,order\nc1,2024-01-02,25.50,o-1\nc2,2024-01-03,10.00,o-2\nc1,2024-02-01,7.25,o-3\n",
    )
    # when it is imported as purchases
    run_import(
        path, "--type", "purchase", "--map", "occurred_at=date", "--map", "value=amount", "--map", "event_id=order"
    )
    # then every order is stored as a purchase of no item
    assert sorted(Event.objects.values_list("client_event_id", "type", "item", "value")) == [
        ("o-1", "purchase", None, Decimal("25.50")),
        ("o-2", "purchase", None, Decimal("10.00")),
        ("o-3", "purchase", None, Decimal("7.25")),
    ]


def test_views_and_carts_without_an_item_stay_rejected(tmp_path):
    path = write(tmp_path, "customer,type,occurred_at\nc1,view,2024-01-02\nc1,cart,2024-01-02\n")
    report = tmp_path / "report.csv"
    run_import(path, "--report", str(report))
    assert [row[3] for row in report_rows(report)[1:]] == ["missing item (required for this event type)"] * 2
    assert Event.objects.count() == 0


def test_it_reports_the_physical_line_when_a_quoted_field_spans_lines(tmp_path):
    # given a CSV whose second row has a note over two lines, and a bad date after it
    path = write(
        tmp_path,
        "customer,item,type,occurred_at,note\n"
        'c1,i1,view,2024-01-02,"first line\nsecond line"\n'
        "\n"
        "c2,i1,view,notadate,plain\n",
    )
    report = tmp_path / "report.csv"
    # when it is imported
    run_import(path, "--report", str(report))
    # then the bad row is reported on the line an editor shows it on
    assert report_rows(report)[1:] == [["5", "occurred_at", "notadate", "unparseable date"]]
    assert Event.objects.count() == 1


def test_it_reports_an_encoding_error_on_its_line(tmp_path):
    # given a UTF-8 file with one Latin-1 byte on line 3,003, far past the part read to recognise the file
    path = tmp_path / "events.csv"
    good = "".join(f"c{n},i1,view,2024-01-02T10:00:00Z\n" for n in range(3001))
    path.write_bytes(b"customer,item,type,occurred_at\n" + good.encode() + b"caf\xe9,i1,view,2024-01-02\n")
    # when it is imported, then it fails whole, naming that line
    with pytest.raises(CommandError, match="not UTF-8 text at line 3003") as failure:
        run_import(path)
    assert "Nothing was stored" in str(failure.value)
    assert Event.objects.count() == 0


def test_it_says_in_one_message_that_the_database_failed_and_nothing_was_stored(tmp_path, monkeypatch):
    # given a database that goes away after the first rows were written
    from django.db import OperationalError

    from shop.services import event_store

    writer_class = type(event_store.event_writer())

    def outage(self):
        raise OperationalError("server closed the connection unexpectedly\n\tThis probably means the server ...")

    monkeypatch.setattr(writer_class, "finish", outage)
    # when the file is imported, then the command fails with one message naming the database
    with pytest.raises(CommandError) as failure:
        run_import(write(tmp_path, GOOD_AND_BAD), *MAP)
    message = str(failure.value)
    assert message.startswith(f"The database {connection.settings_dict['NAME']} on ")
    assert "server closed the connection unexpectedly. Nothing was stored" in message
    assert Event.objects.count() == Customer.objects.count() == 0


def test_it_exits_non_zero_without_a_traceback_when_the_database_is_down(tmp_path):
    # given a database nobody answers for (nothing listens on port 9)
    import subprocess
    import sys

    path = write(tmp_path, GOOD_AND_BAD)
    env = {**os.environ, "DATABASE_URL": "postgres://promo@127.0.0.1:9/promo_down"}
    # when import_events runs, then it prints one clear error and exits non-zero
    run = subprocess.run(
        [sys.executable, "manage.py", "import_events", str(path), *MAP, "--verbosity", "0"],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
    )
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("CommandError: The database promo_down on 127.0.0.1:9 failed during the import")
    assert "Nothing was stored" in run.stderr


def test_it_fails_whole_when_the_rows_cannot_be_counted_reliably(tmp_path):
    # given a CSV with a line holding only "" (pandas reads a row there, the csv module a blank line)
    path = write(tmp_path, 'customer,item,type,occurred_at\nc1,i1,view,2024-01-02\n""\nc2,i1,view,2024-01-02\n')
    # when it is imported, then nothing is stored under a wrong line
    with pytest.raises(CommandError, match="its rows cannot be counted reliably"):
        run_import(path)
    assert Event.objects.count() == 0


def test_a_nul_in_an_id_past_the_first_64_kib_rejects_its_row_only(tmp_path):
    # given a CSV whose NUL comes after the part read to recognise it (found by tests/shop/test_import_fuzz.py)
    path = tmp_path / "events.csv"
    path.write_bytes(
        b"customer,item,type,occurred_at\n"
        + b"c1,i1,view,2024-01-02\n"
        + b"c" * 70_000
        + b",i1,view,2024-01-02\nc\x002,i1,view,2024-01-02\n"
    )
    report = tmp_path / "report.csv"
    # when it is imported, then the row is reported (PostgreSQL text cannot hold NUL) and the others stored
    run_import(path, "--report", str(report))
    assert [row[:2] + row[3:] for row in report_rows(report)[1:]] == [
        ["3", "customer", "customer id longer than 64 characters"],
        ["4", "customer", "contains a NUL character"],
    ]
    assert report_rows(report)[2][2] == "c\\02"
    assert list(Event.objects.values_list("customer__external_id", flat=True)) == ["c1"]


def test_integer_ids_of_a_parquet_column_with_gaps_are_kept_exact(tmp_path):
    # given int64 customer ids past 2**53 in a column with a null (pandas would make it float64)
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "ids.parquet"
    table = pa.table(
        {
            "customer": pa.array([2**53 + 1, None, 2**63 - 1], type=pa.int64()),
            "occurred_at": ["2024-01-02", "2024-01-02", "2024-01-02"],
        }
    )
    pq.write_table(table, path)
    # when it is imported, then each id is stored as written and the row without one is rejected
    run_import(path, "--type", "purchase")
    assert sorted(Event.objects.values_list("customer__external_id", flat=True)) == [
        str(2**53 + 1),
        str(2**63 - 1),
    ]


def test_a_nanosecond_date_beside_a_year_9999_one_is_read_not_crashed_on(tmp_path):
    # given a date with nine decimals (read in nanoseconds) and one in year 9999 (which nanoseconds cannot hold)
    path = write(
        tmp_path,
        "customer,item,type,occurred_at\n"
        "c1,i1,view,2024-01-01T10:00:00.123456789Z\n"
        "c2,i1,view,9999-12-31\n"
        "c3,i1,view,12/31/2024\n",
    )
    report = tmp_path / "report.csv"
    # when it is imported, then the far date is reported and the others stored (found by test_import_fuzz.py)
    run_import(path, "--report", str(report))
    assert report_rows(report)[1:] == [["3", "occurred_at", "9999-12-31", "date more than 2 days in the future"]]
    assert sorted(Event.objects.values_list("customer__external_id", flat=True)) == ["c1", "c3"]


def test_it_maps_an_order_column_and_leaves_empty_cells_without_an_order(tmp_path):
    # given a file whose order column is filled for two lines and empty for the third
    path = write(
        tmp_path,
        "customer,item,ts,basket\nc1,i1,2024-01-02 10:00,b-1\nc1,i2,2024-01-02 10:00,b-1\nc2,i1,2024-01-03,\n",
    )
    report = tmp_path / "report.csv"
    # when it is imported with --map order=basket
    run_import(path, "--type", "purchase", "--map", "occurred_at=ts", "--map", "order=basket", "--report", str(report))
    # then the order ids are stored, and the empty cell means no order
    assert sorted(Event.objects.values_list("customer__external_id", "item__external_id", "order_id")) == [
        ("c1", "i1", "b-1"),
        ("c1", "i2", "b-1"),
        ("c2", "i1", None),
    ]
    assert report_rows(report) == REPORT_HEADER_ONLY


def test_an_order_id_too_long_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, f"customer,item,ts,basket\nc1,i1,2024-01-02,{'x' * 129}\nc1,i2,2024-01-02,ok\n")
    report = tmp_path / "report.csv"
    run_import(path, "--type", "purchase", "--map", "occurred_at=ts", "--map", "order=basket", "--report", str(report))
    assert report_rows(report)[1] == ["2", "basket", "x" * 129, "order id longer than 128 characters"]
    assert list(Event.objects.values_list("order_id", flat=True)) == ["ok"]
