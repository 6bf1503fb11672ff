"""The loaders stream the events into Ragged series equal to what a plain per-customer query gives."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from recommender import interactions
from recommender.interactions import (
    TYPE_IDS,
    histories_for,
    interactions_load,
    purchase_orders_for,
    purchase_orders_load,
    purchased_items,
)
from recommender.ml.baskets import order_numbers
from recommender.ml.ragged import Ragged
from shop.models import Event
from tests.factories import CustomerFactory, ItemFactory

T = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def small_shop():
    """Five customers with views, carts and purchases, some in named orders, some at the same moment."""
    items = [ItemFactory(external_id=f"i{n}") for n in range(6)]
    customers = [CustomerFactory(external_id=f"c{n}") for n in range(5)]
    rng = np.random.default_rng(3)
    events = []
    for c, customer in enumerate(customers[:4]):  # the fifth has no event
        for n in range(int(rng.integers(1, 12))):
            kind = ["purchase", "cart", "view"][int(rng.integers(0, 3))]
            events.append(
                Event(
                    customer=customer,
                    item=items[int(rng.integers(0, 6))],
                    type=kind,
                    quantity=int(rng.integers(0, 3)),
                    occurred_at=T + timedelta(hours=int(rng.integers(0, 4)) * 24 + n // 3),
                    source="test",
                    client_event_id=f"{c}-{n}",
                    order_id=[None, "", f"o{n % 2}"][int(rng.integers(0, 3))],
                )
            )
    Event.objects.bulk_create(events)
    return customers, items


def naive_rows(customer, *, types, purchases=False):
    """One customer's events, as a plain ORM query in time order gives them."""
    rows = Event.objects.filter(customer=customer, type__in=types, item__isnull=False)
    if purchases:
        rows = rows.filter(quantity__gt=0)
    return list(rows.order_by("occurred_at", "id"))


def epoch(event):
    return int(event.occurred_at.timestamp())


@pytest.mark.django_db
def test_interactions_are_each_customers_events_in_time_order(small_shop, monkeypatch):
    # given batches of 3 rows, so customers' events straddle the batches
    monkeypatch.setattr(interactions, "FETCH_ROWS", 3)
    customers, _items = small_shop
    # when
    data = interactions_load()
    # then
    assert isinstance(data.histories, Ragged)
    index = data.item_index()
    assert data.customer_ids.tolist() == sorted(c.id for c in customers[:4])
    for row, customer_id in enumerate(data.customer_ids):
        events = naive_rows(customer_id, types=list(TYPE_IDS))
        assert data.histories[row].tolist() == [index[e.item_id] for e in events]
        assert data.event_types[row].tolist() == [TYPE_IDS[e.type] for e in events]
        assert data.timestamps[row].tolist() == [epoch(e) for e in events]
    assert data.n_events == Event.objects.count()


@pytest.mark.django_db
def test_orders_match_a_per_customer_query_and_order_numbers(small_shop, monkeypatch):
    monkeypatch.setattr(interactions, "FETCH_ROWS", 3)
    customers, _items = small_shop
    data = purchase_orders_load()
    index = {int(item): n for n, item in enumerate(data.item_ids)}
    assert isinstance(data.orders, Ragged)
    for row, customer_id in enumerate(data.customer_ids):
        events = naive_rows(customer_id, types=["purchase"], purchases=True)
        stamps = [epoch(e) for e in events]
        assert data.histories[row].tolist() == [index[e.item_id] for e in events]
        assert data.timestamps[row].tolist() == stamps
        assert data.orders[row].tolist() == order_numbers(np.array(stamps), [e.order_id for e in events]).tolist()


@pytest.mark.django_db
def test_the_for_loaders_follow_the_customers_given_with_empty_rows_where_none(small_shop):
    customers, items = small_shop
    item_ids = np.array(sorted(i.id for i in items[:4]))  # a trained model's index: two items unknown to it
    wanted = [customers[4].id, customers[2].id, customers[0].id]
    histories, types, stamps = histories_for(customer_ids=wanted, item_ids=item_ids)
    bought, times, orders = purchase_orders_for(customer_ids=wanted, item_ids=item_ids)
    assert len(histories) == len(bought) == 3
    assert len(histories[0]) == len(bought[0]) == 0
    for row, customer_id in enumerate(wanted[1:], start=1):
        events = [e for e in naive_rows(customer_id, types=list(TYPE_IDS)) if e.item_id in item_ids]
        assert histories[row].tolist() == np.searchsorted(item_ids, [e.item_id for e in events]).tolist()
        assert types[row].tolist() == [TYPE_IDS[e.type] for e in events]
        assert stamps[row].tolist() == [epoch(e) for e in events]
        purchases = naive_rows(customer_id, types=["purchase"], purchases=True)
        numbers = order_numbers(np.array([epoch(e) for e in purchases]), [e.order_id for e in purchases])
        known = [e.item_id in item_ids for e in purchases]
        assert (
            bought[row].tolist()
            == np.searchsorted(item_ids, [e.item_id for e in purchases if e.item_id in item_ids]).tolist()
        )
        assert orders[row].tolist() == numbers[known].tolist()
    assert [len(h) for h in purchase_orders_for(customer_ids=[], item_ids=item_ids)] == [0, 0, 0]


@pytest.mark.django_db
def test_the_orders_read_gives_each_customers_bought_items_as_purchased_items_does(small_shop, monkeypatch):
    # given batches of 3 rows, purchases of quantity 0 among them, and a model that knows 4 of the 6 items
    monkeypatch.setattr(interactions, "FETCH_ROWS", 3)
    customers, items = small_shop
    assert Event.objects.filter(type="purchase", quantity__lte=0).exists()
    item_ids = np.array(sorted(i.id for i in items[:4]))
    wanted = [customers[4].id, customers[2].id, customers[0].id, customers[3].id, customers[1].id]
    # when serving reads the orders and the bought items at once
    bought = {}
    together = purchase_orders_for(customer_ids=wanted, item_ids=item_ids, bought=bought)
    # then the bought items are purchased_items' (every item, every quantity; none for the customer with none)
    assert bought == purchased_items(customer_ids=wanted)
    assert bought[customers[4].id] == set()
    # ... and the orders are what the read without them gives
    for mine, plain in zip(together, purchase_orders_for(customer_ids=wanted, item_ids=item_ids)):
        assert mine.values.tolist() == plain.values.tolist()
        assert mine.offsets.tolist() == plain.offsets.tolist()


@pytest.mark.django_db
def test_the_response_models_purchases_are_streamed_whole(small_shop, monkeypatch):
    from recommender.response import _purchase_rows

    # given batches of 3 rows, and COPY's stream parsed every 120 bytes (rows of 50 straddle the parses)
    monkeypatch.setattr(interactions, "FETCH_ROWS", 3)
    monkeypatch.setattr(interactions, "COPY_PARSE_BYTES", 120)
    # when
    rows = np.stack(_purchase_rows(until=None, since=None), axis=1)
    # then: every purchase with an item, once, with its time and value
    purchases = Event.objects.filter(type="purchase", item__isnull=False)
    expected = sorted((e.customer_id, e.item_id, e.occurred_at.timestamp(), float(e.value or 0)) for e in purchases)
    assert rows.shape == (len(expected), 4) and len(expected) > 3
    assert sorted(map(tuple, rows.tolist())) == expected  # whole seconds and cents: exact in float64


@pytest.mark.django_db
def test_the_response_models_purchases_keep_to_their_window(small_shop):
    from recommender.response import _purchase_rows

    since, until = T + timedelta(days=1), T + timedelta(days=3)
    rows = np.stack(_purchase_rows(until=until, since=since), axis=1)
    purchases = Event.objects.filter(type="purchase", item__isnull=False, occurred_at__gte=since, occurred_at__lt=until)
    expected = sorted((e.customer_id, e.item_id, e.occurred_at.timestamp(), float(e.value or 0)) for e in purchases)
    assert 0 < len(expected) < Event.objects.filter(type="purchase").count()
    assert sorted(map(tuple, rows.tolist())) == expected


@pytest.mark.django_db
def test_copy_columns_gives_the_querys_rows_as_columns_across_parses(monkeypatch):
    from recommender.interactions import copy_columns

    # given a parse every 1,000 bytes: rows of 26 bytes end mid-row at each
    monkeypatch.setattr(interactions, "COPY_PARSE_BYTES", 1000)
    sql = "SELECT g::int8 - 20000, (g * 0.25)::float8 FROM generate_series(1, %s) g WHERE g = ANY(%s) OR g > %s"
    # when
    ints, floats = copy_columns(sql, [5000, [1, 7], 10], [np.int64, np.float64])
    # then
    g = np.array([1, 7] + list(range(11, 5001)))
    assert ints.dtype == np.int64 and floats.dtype == np.float64
    assert ints.tolist() == (g - 20000).tolist() and floats.tolist() == (g * 0.25).tolist()
    # and an empty result is empty columns
    empty = copy_columns("SELECT 1::int8 WHERE false", [], [np.int64])
    assert empty[0].dtype == np.int64 and len(empty[0]) == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "sql", ["SELECT NULL::int8, 1.5::float8", "SELECT 1::int4, 1.5::float8", "SELECT 1::int8, 1.5::float8, 2::int8"]
)
def test_copy_columns_refuses_a_null_or_a_column_of_another_width(sql):
    from recommender.interactions import copy_columns

    with pytest.raises(ValueError, match="expected width"):
        copy_columns(sql, [], [np.int64, np.float64])
