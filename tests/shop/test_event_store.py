"""The event writer's two ways into a table that has events: COPY through a staging table for a large chunk,
one INSERT ... FROM unnest(arrays) for a small one (an API batch). They must store the same rows."""

from datetime import UTC, datetime

import pandas as pd
import pytest
from django.db import connection, transaction

from promo_site.models import OutboxTask
from shop.models import Event
from shop.services import event_store
from shop.services.event_batches import events_store_batch
from tests.factories import EventFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the COPY and array paths are PostgreSQL's"),
]

FIELDS = ["customer__external_id", "item__external_id", "type", "quantity", "value", "discount", "occurred_at"]
FIELDS += ["client_event_id", "attributes", "order_id"]


def chunk(source):
    """Rows with every kind of value a column takes: no item, no value, attributes, an order id, microseconds."""
    return pd.DataFrame(
        {
            "customer": ["c1", "c2", "c1", "c3"],
            "item": ["i1", None, "i2", "i1"],
            "type": ["purchase", "coupon_redemption", "view", "purchase"],
            "quantity": [2, 1, 1, 3],
            "value": [9.99, None, None, 12345678.5],
            "discount": [0.5, 0.0, 0.0, 1.25],
            "occurred_at": pd.to_datetime(
                ["2026-01-02T10:00:00.123456Z", "2026-01-03T00:00:00Z", "2026-02-01T23:59:59Z", "2025-06-30T12:00:00Z"],
                format="ISO8601",
            ),
            "source": source,
            "client_event_id": ["e1", "e2", "e3", "e4"],
            "attributes": [{"channel": "web"}, None, None, {"a": [1, 2]}],
            "order_id": ["o1", None, None, "o2"],
        }
    )


def stored(source):
    return list(Event.objects.filter(source=source).order_by("id").values_list(*FIELDS))


def write(frame):
    with transaction.atomic(), event_store.event_writer() as writer:
        writer.add(frame)
        return writer.finish()


def test_a_small_chunk_stores_the_same_rows_as_a_copied_one(monkeypatch):
    # given a table that has events (so neither write is a first load)
    EventFactory()
    # when the same rows are written once as a small chunk and once through COPY
    small = write(chunk("small"))
    monkeypatch.setattr(event_store, "SMALL_CHUNK", 0)
    copied = write(chunk("copied"))
    # then both stored every row, with the same values
    assert (small.stored, copied.stored) == (4, 4)
    assert stored("small") == stored("copied")
    first = Event.objects.get(source="small", client_event_id="e1")
    assert first.occurred_at == datetime(2026, 1, 2, 10, 0, 0, 123456, tzinfo=UTC) and str(first.value) == "9.99"


def test_a_small_chunk_stores_an_event_id_once():
    # given events of a source already stored
    EventFactory()
    write(chunk("till"))
    # when a chunk repeats one of them, and one new event twice (a retry carries the same time)
    again = chunk("till").iloc[[0, 1, 1]].assign(client_event_id=["e1", "e5", "e5"])
    result = write(again)
    # then only the new event is stored, once, and the rest count as repeats
    assert (result.received, result.stored, result.duplicates) == (3, 1, 2)
    assert Event.objects.filter(source="till").count() == 5


def test_an_event_id_at_another_time_is_another_event():
    # given a stored event; the idempotency key is (source, event id, time) since the events table is
    # partitioned by time (shop migration 0008)
    write(chunk("till"))
    # when the same id comes again with another time
    result = write(chunk("till").iloc[:1].assign(occurred_at=pd.Timestamp("2026-01-05T10:00:00Z")))
    # then it is stored as a second event
    assert result.stored == 1
    assert Event.objects.filter(source="till", client_event_id="e1").count() == 2


def test_a_batch_without_purchases_queues_no_attribution():
    # given a batch of views, and one with a purchase
    view = {"event_id": "v1", "customer": "c1", "item": "i1", "type": "view", "occurred_at": "2026-01-02T10:00:00Z"}
    purchase = {**view, "event_id": "p1", "type": "purchase", "value": "9.99"}
    # when the views are stored, nothing waits to be attributed
    assert events_store_batch(source="web", events=[view]).stored == 1
    assert not OutboxTask.objects.filter(task="campaigns.tasks.attribute_events").exists()
    # when the purchase is stored, its attribution is queued
    assert events_store_batch(source="web", events=[view, purchase]).stored == 1
    assert OutboxTask.objects.filter(task="campaigns.tasks.attribute_events").count() == 1


AWKWARD_IDS = ["plain", "with,comma", 'with "quotes"', "with\ttab", "with\nnewline", "back\\slash", "\\N", "NULL",
               "", " spaced ", "ünïcødé", "a\\tb"]  # fmt: skip


@pytest.mark.parametrize("preload", [False, True])
def test_known_ids_resolve_to_their_rows_whether_the_table_is_read_whole_or_looked_up(monkeypatch, preload):
    from shop.models import Customer, Item

    # given customers whose external ids hold what CSV and COPY's text format escape, and one item
    customers = {e: Customer.objects.create(external_id=e).id for e in AWKWARD_IDS}
    item = Item.objects.create(external_id="i1")
    # and a writer that reads the whole table at its first unknown id (preload) or looks ids up by index
    monkeypatch.setattr(event_store, "PRELOAD_MIN_UNKNOWN", 1 if preload else 10**9)
    names = [*AWKWARD_IDS, "new-one", "new-one"]
    frame = pd.DataFrame(
        {
            "customer": names,
            "item": ["i1"] * len(names),
            "type": "view",
            "quantity": 1,
            "value": None,
            "discount": 0.0,
            "occurred_at": pd.Timestamp("2026-01-02T10:00:00Z"),
            "source": "awkward",
            "client_event_id": [f"e{n}" for n in range(len(names))],
            "attributes": None,
            "order_id": None,
        }
    )
    # when it writes events naming them and an unknown id (twice)
    with transaction.atomic(), event_store.event_writer() as writer:
        writer.add(frame)
        writer.finish()
        assert writer._ids["shop_customer"].preloaded is preload
    # then each known id's event is its own customer's, the unknown one's two are one new stub's
    by_event = dict(Event.objects.filter(source="awkward").values_list("client_event_id", "customer_id"))
    assert [by_event[f"e{n}"] for n in range(len(AWKWARD_IDS))] == [customers[e] for e in AWKWARD_IDS]
    stub = Customer.objects.get(external_id="new-one")
    assert stub.is_stub and by_event[f"e{len(AWKWARD_IDS)}"] == by_event[f"e{len(AWKWARD_IDS) + 1}"] == stub.id
    assert Event.objects.filter(source="awkward", item=item).count() == len(names)


def test_the_key_cache_leaves_null_ids_unresolved_and_not_unknown():
    cache = event_store._KeyCache()
    cache.add({"a": 5})
    keys, unknown = cache.keys_of(pd.Series(["a", None, pd.NA, "b", "b"], dtype="string"))
    assert keys.tolist() == [5, -1, -1, -1, -1] and unknown == ["b"]
