"""Monthly partitions of shop_event (migration 0008, shop/services/event_partitions.py), on real PostgreSQL."""

import random
import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from campaigns.models import PurchaseDay
from campaigns.purchase_summary import summary_refresh
from shop.models import Customer, Event
from shop.services import event_partitions, tables
from shop.services.event_batches import events_store_batch
from shop.services.imports import events_import_file
from shop.services.privacy import customer_erase, customer_export
from tests.campaigns.test_purchase_summary import assert_same_as_raw, history  # noqa: F401
from tests.factories import CustomerFactory, EventFactory, UserFactory
from tests.shop.test_imports import monthly_partitions_drop

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions are PostgreSQL's"),
]


def partition_rows():
    """{partition: rows} of shop_event now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT tableoid::regclass::text, count(*) FROM shop_event GROUP BY 1")
        return dict(cursor.fetchall())


def partitions():
    with connection.cursor() as cursor:
        cursor.execute("SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'shop_event'::regclass")
        return {name for (name,) in cursor.fetchall()}


def summary_days():
    return list(PurchaseDay.objects.order_by("customer_id", "day").values_list("customer_id", "day", "n", "spend"))


def event(event_id, when, customer="c1", item="i1", kind="view"):
    return {"event_id": event_id, "customer": customer, "item": item, "type": kind, "occurred_at": when}


def write_file(tmp_path, lines, name="events.csv"):
    path = tmp_path / name
    path.write_text("event_id,customer,item,occurred_at\n" + "".join(f"{line}\n" for line in lines))
    return path


def test_writes_of_two_months_create_their_partitions():
    # when an API batch holds events of two months
    result = events_store_batch(
        source="web", events=[event("a", "2025-03-31T23:59:59Z"), event("b", "2025-04-01T00:00:00Z")]
    )
    # then each landed in its month's partition, none in DEFAULT
    assert result.stored == 2
    assert partition_rows() == {"shop_event_y2025m03": 1, "shop_event_y2025m04": 1}


def test_a_retried_api_batch_stores_nothing_twice():
    # given a batch stored across two months
    batch = [event("a", "2025-03-10T10:00:00Z"), event("b", "2025-05-10T10:00:00Z")]
    events_store_batch(source="web", events=batch)
    # when it is sent again
    again = events_store_batch(source="web", events=batch)
    # then nothing more is stored
    assert (again.stored, again.duplicates) == (0, 2)
    assert Event.objects.count() == 2


def test_a_file_imported_twice_stores_nothing_twice(tmp_path):
    # given a file of two months, imported once (both months loaded the first-load way)
    path = write_file(tmp_path, ["A,c1,i1,2025-03-10", "B,c2,i2,2025-04-10", "C,c1,i2,2025-04-11"])
    first = events_import_file(path=path, event_type="view")
    # when it is imported again (the months now have partitions: row by row)
    second = events_import_file(path=path, event_type="view")
    # then the second stored nothing
    assert (first.rows_stored, second.rows_stored, second.rows_duplicate) == (3, 0, 3)
    assert partition_rows() == {"shop_event_y2025m03": 1, "shop_event_y2025m04": 2}


def test_rows_in_default_move_into_their_new_partition_with_their_ids():
    # given events the ORM wrote into DEFAULT (no partition for their month)
    stored = [EventFactory(occurred_at=datetime(2025, 2, day, tzinfo=UTC)) for day in (1, 14, 28)]
    other = EventFactory(occurred_at=datetime(2025, 6, 1, tzinfo=UTC))
    assert partition_rows() == {"shop_event_default": 4}
    # when an API batch writes an event of that month
    events_store_batch(source="web", events=[event("x", "2025-02-20T10:00:00Z")])
    # then the month's rows moved into its partition with the same ids; the other month's stayed
    assert partition_rows() == {"shop_event_y2025m02": 4, "shop_event_default": 1}
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM shop_event_y2025m02 ORDER BY id")
        moved = [i for (i,) in cursor.fetchall()]
    assert moved[:3] == [e.id for e in stored] and Event.objects.filter(id=other.id).exists()


def test_hostile_dates_create_no_partition_and_get_a_clear_answer(api):
    # given the partitions there are
    before = partitions()
    # when the API is sent events dated in the years 9999 and 0001
    response = api.post(
        "/api/v1/events/",
        {"source": "web", "events": [event("a", "9999-12-31T00:00:00Z"), event("b", "0001-01-01T00:00:00Z")]},
        format="json",
    )
    # then both are refused, each named with its field, and no partition was made
    body = response.json()
    assert response.status_code < 500 and body["stored"] == 0
    assert [(r["row"], e["field"]) for r in body["rejected"] for e in r["errors"]] == [
        (0, "occurred_at"),
        (1, "occurred_at"),
    ]
    assert partitions() == before and Event.objects.count() == 0


def test_months_out_of_range_are_never_created():
    # given rows the ORM wrote with a far date (they land in DEFAULT)
    EventFactory(occurred_at=datetime(9999, 12, 31, tzinfo=UTC))
    # when a writer asks for the months of 9999, 1, and a month in range
    with connection.cursor() as cursor:
        created = event_partitions.partitions_ensure(cursor, [9999 * 12 + 11, 12, 2025 * 12])
    # then only the month in range was created
    assert created == [2025 * 12] and "shop_event_y9999m12" not in partitions()
    assert partition_rows() == {"shop_event_default": 1}


def test_the_purchase_summary_stays_exact_across_partitions_and_a_delete(history):  # noqa: F811
    customers, items, now = history  # 400 days of purchases, written by the ORM into DEFAULT
    summary_refresh()
    days = summary_days()
    # when every month gets its partition (the summarized rows move out of DEFAULT, below the parent's triggers)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT (extract(year FROM occurred_at AT TIME ZONE 'UTC') * 12 "
            "+ extract(month FROM occurred_at AT TIME ZONE 'UTC') - 1)::int FROM shop_event"
        )
        months = [m for (m,) in cursor.fetchall()]
        event_partitions.partitions_ensure(cursor, months)
    # then the summary is untouched and counts as the raw events do
    assert len(months) > 10 and "shop_event_default" not in partition_rows()
    assert (
        list(PurchaseDay.objects.order_by("customer_id", "day").values_list("customer_id", "day", "n", "spend")) == days
    )
    rng = random.Random(3)
    assert_same_as_raw(rng, rule_sets=10)
    # and after new purchases through the API in several months, and a customer deleted (their events in many)
    batch = [
        event(f"p{n}", (now - timezone.timedelta(days=40 * n)).isoformat(), customers[n].external_id,
              items[0].external_id, "purchase") | {"value": 5}
        for n in range(8)
    ]  # fmt: skip
    assert events_store_batch(source="till", events=batch).stored == 8
    Customer.objects.filter(id=customers[3].id).delete()
    assert_same_as_raw(rng, rule_sets=10)
    summary_refresh()
    assert_same_as_raw(rng, rule_sets=10)


def test_a_customer_is_exported_erased_and_deleted_across_partitions():
    # given two customers with events in three months' partitions
    erased, deleted = CustomerFactory(external_id="c1"), CustomerFactory(external_id="c2")
    batch = [event(f"e{m}{c}", f"2025-0{m}-15T10:00:00Z", customer=c) for m in (1, 2, 3) for c in ("c1", "c2")]
    events_store_batch(source="web", events=batch)
    assert partition_rows() == {f"shop_event_y2025m0{m}": 2 for m in (1, 2, 3)}
    # when one is exported, then erased
    exported = customer_export(customer_id=erased.id, by=UserFactory())
    customer_erase(customer_id=erased.id, by=UserFactory())
    # then the export held every event; the events stay, pseudonymous, after the erasure
    assert len(exported["events"]) == 3 and Event.objects.filter(customer=erased).count() == 3
    # and deleting the other deletes their events in every partition
    Customer.objects.filter(id=deleted.id).delete()
    assert partition_rows() == {f"shop_event_y2025m0{m}": 1 for m in (1, 2, 3)}


@pytest.mark.django_db(transaction=True)
def test_an_api_write_goes_on_while_a_file_of_another_month_is_imported(tmp_path, monkeypatch):
    # given a file import of January 2025 paused after its first chunk (its month's table not yet attached)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    path = write_file(tmp_path, [f"F{n},c{n},i{n},2025-01-{n + 10}" for n in range(6)])
    paused, resume, order = threading.Event(), threading.Event(), []

    def progress(done, total):
        if not paused.is_set():
            paused.set()
            resume.wait(timeout=30)  # the API write below must not need the import to end
            order.append("import resumed")

    def import_file():
        try:
            order.append(events_import_file(path=path, event_type="view", progress=progress).rows_stored)
        finally:
            connections.close_all()

    importer = threading.Thread(target=import_file)
    importer.start()
    assert paused.wait(timeout=30)
    # when an API batch writes March 2025 (a new month) meanwhile (a customer and item the file does not create:
    # a stub the import created and has not committed would make the batch wait for it)
    with transaction.atomic():
        stored = events_store_batch(source="web", events=[event("a", "2025-03-01T10:00:00Z", "c99", "i99")]).stored
    order.append("api stored")
    resume.set()
    importer.join(timeout=60)
    # then the API's write finished while the import waited, and both stored everything
    assert order == ["api stored", "import resumed", 6] and stored == 1
    assert partition_rows() == {"shop_event_y2025m01": 6, "shop_event_y2025m03": 1}


@pytest.mark.django_db(transaction=True)
def test_two_writers_creating_the_same_month_both_store_their_rows():
    # given two API batches of the same new month, held at its lock until both are waiting
    import psycopg

    settings = connection.settings_dict
    month = 2025 * 12 + 7  # August 2025
    results, errors = [], []

    def post(name):
        try:
            # Customers and items of its own: a stub the other created would make it wait for the other's commit.
            batch = [event(name, "2025-08-10T10:00:00Z", customer=f"c{name}", item=f"i{name}")]
            results.append(events_store_batch(source="web", events=batch).stored)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    with psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
                         port=settings["PORT"] or None, password=settings["PASSWORD"] or None) as holder:  # fmt: skip
        holder.execute("SELECT pg_advisory_lock(%s, %s)", [event_partitions.LOCK_CLASS, month])
        writers = [threading.Thread(target=post, args=(name,)) for name in ("a", "b")]
        for writer in writers:
            writer.start()
        threading.Event().wait(1)
        holder.execute("SELECT pg_advisory_unlock(%s, %s)", [event_partitions.LOCK_CLASS, month])
        # when the lock is let go, then both batches store their event, in the one partition made
        for writer in writers:
            writer.join(timeout=30)
    assert errors == [] and results == [1, 1]
    assert partition_rows() == {"shop_event_y2025m08": 2}


def test_a_first_load_of_many_chunks_stores_each_row_once_beside_a_month_that_has_a_partition(tmp_path, monkeypatch):
    # given a month with a partition already, and a file of chunks of 2 rows over it and two new months (their rows
    # COPYed on the writer's second thread while it prepares the next chunk), with an event repeated across chunks
    monthly_partitions_drop()  # a committed test before may have left these months' partitions (empty) behind
    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    events_store_batch(source="file", events=[event("old", "2025-05-02T10:00:00Z")])
    lines = [f"F{n},c{n % 3},i{n % 4},2025-0{6 + n % 2}-{n + 10}" for n in range(9)]
    lines += ["F2,c2,i2,2025-06-12", "M1,c1,i1,2025-05-03", "F3,c0,i3,2025-07-13"]
    path = write_file(tmp_path, lines)
    # when it is imported
    summary = events_import_file(path=path, event_type="view", source="file")
    # then every distinct event is stored once, in its month
    assert (summary.rows_stored, summary.rows_duplicate) == (10, 2)
    assert partition_rows() == {"shop_event_y2025m05": 2, "shop_event_y2025m06": 5, "shop_event_y2025m07": 4}


def test_a_month_loaded_by_a_file_has_its_statistics_once_attached(tmp_path):
    # given a file of a month with no partition yet (the first-load way: a table of its own, indexed, attached)
    monthly_partitions_drop()
    path = write_file(tmp_path, [f"S{n},c{n % 7},i{n % 5},2025-08-{1 + n % 28:02d}" for n in range(60)])
    # when it is imported
    events_import_file(path=path, event_type="view", source="file")
    # then the planner knows its columns (ANALYZE ran in the import): it need not guess how many rows a
    # customer has there
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, n_distinct FROM pg_stats WHERE tablename = %s AND attname = 'customer_id'",
            ["shop_event_y2025m08"],
        )
        # (7 distinct of 60 rows: PostgreSQL writes it as the fraction -7/60, as the count grows with the table)
        assert cursor.fetchall() == [("customer_id", pytest.approx(-7 / 60))]


@pytest.mark.django_db(transaction=True)
def test_a_copy_that_fails_on_the_second_thread_is_the_error_told_and_stores_nothing(tmp_path, monkeypatch):
    # given a stored event, and a first load whose third chunk's COPY the server refuses
    from shop.services import event_store

    monthly_partitions_drop()  # the file's month must have no partition: a committed test may have left it behind
    monkeypatch.setattr(tables, "CHUNK_ROWS", 2)
    events_store_batch(source="web", events=[event("kept", "2025-05-02T10:00:00Z")])
    payloads, original = [], event_store._csv_payload

    def payload(frame, now):
        payloads.append(frame)
        return b"not,a,row\n" if len(payloads) == 3 else original(frame, now)

    monkeypatch.setattr(event_store, "_csv_payload", payload)
    path = write_file(tmp_path, [f"F{n},c{n},i{n},2025-08-{n + 10}" for n in range(10)])
    # when it is imported
    with pytest.raises(Exception) as raised:
        events_import_file(path=path, event_type="view")
    # then the error is the COPY's own (not the aborted transaction's that follows it), and nothing of the file
    # is left: no rows, no month table, the stored event kept
    assert "COPY" in str(raised.value) and "aborted" not in str(raised.value), raised.value
    assert partition_rows() == {"shop_event_y2025m05": 1}
    assert "shop_event_y2025m08" not in partitions()
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('shop_event_y2025m08')")
        assert cursor.fetchone()[0] is None
