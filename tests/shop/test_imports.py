import csv
from pathlib import Path

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from shop.models import Customer, Event, ImportRun, Item
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

GOOD_AND_BAD = """\
cust,sku,ts,qty,amount,kind
c1,i1,2024-01-02 10:00:00,1,9.99,purchase
c2,i2,2024-01-02T11:00:00+01:00,2,5,view
c3,,2024-01-02,1,,purchase
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
    ]
    assert report_rows(report)[1] == ["4", "product", "", "missing item (required for this event type)"]
    assert Event.objects.get(client_event_id="a").source == "pos"


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
