"""Reading the shop's events into the arrays recommender.ml trains on (selectors of the recommender)."""

from dataclasses import dataclass

import numpy as np
from django.db import connection

from recommender.ml.baskets import order_numbers
from recommender.ml.data import Split
from shop.models import Event, EventType, Item

# Event types a recommender learns from, with their ids as model inputs (order is part of a saved model).
TRAINING_TYPES = [EventType.PURCHASE, EventType.CART, EventType.VIEW]
TYPE_IDS = {t.value: i for i, t in enumerate(TRAINING_TYPES)}


@dataclass
class Interactions:
    customer_ids: np.ndarray  # database ids, one per history
    item_ids: np.ndarray  # database ids; item_ids[index] is the item behind model index `index`
    histories: list  # per customer: item indices in time order
    event_types: list  # per customer: TYPE_IDS of each event
    timestamps: list  # per customer: seconds since the epoch

    @property
    def n_events(self):
        return int(sum(len(h) for h in self.histories))

    def item_index(self):
        return {int(item): index for index, item in enumerate(self.item_ids)}


def _epoch_sql():
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM occurred_at)::bigint"
    return "CAST(strftime('%%s', occurred_at) AS INTEGER)"


def _select(columns, *, types, customer_ids=None, until=None, since=None, tail=""):
    sql = [f"SELECT {columns} FROM shop_event WHERE item_id IS NOT NULL"]
    params = list(types)
    sql.append(f"AND type IN ({', '.join(['%s'] * len(params))})")
    if customer_ids is not None:
        sql.append(f"AND customer_id IN ({', '.join(['%s'] * len(customer_ids))})")
        params += [int(c) for c in customer_ids]
    if since is not None:
        sql.append("AND occurred_at >= %s")
        params.append(since)
    if until is not None:
        sql.append("AND occurred_at < %s")
        params.append(until)
    with connection.cursor() as cursor:
        cursor.execute(" ".join(sql + [tail]), params)
        return cursor.fetchall()


def _event_rows(*, customer_ids=None, until=None, since=None, types=None):
    """(customer_id, item_id, type, epoch) of item events, per customer in time order.

    Events on an item the customer later said "not interested" in are left out (see _without_rejected).
    """
    rows = _select(
        f"customer_id, item_id, type, {_epoch_sql()}",
        types=list(types or TYPE_IDS),
        customer_ids=customer_ids,
        until=until,
        since=since,
        tail="ORDER BY customer_id, occurred_at, id",
    )
    if not rows:
        return np.empty((0, 4), dtype=np.int64)
    customers, items, types_, epochs = zip(*rows)
    rows = np.column_stack(
        [
            np.asarray(customers, dtype=np.int64),
            np.asarray(items, dtype=np.int64),
            np.asarray([TYPE_IDS[t] for t in types_], dtype=np.int64),
            np.asarray(epochs, dtype=np.int64),
        ]
    )
    return _without_rejected(rows, _rejections(customer_ids=customer_ids, until=until))


def _rejections(*, customer_ids=None, until=None):
    """{(customer_id, item_id): epoch of the latest "not interested"} before `until`."""
    rows = _select(
        f"customer_id, item_id, MAX({_epoch_sql()})",
        types=[EventType.NOT_INTERESTED.value],
        customer_ids=customer_ids,
        until=until,
        tail="GROUP BY customer_id, item_id",
    )
    return {(customer, item): epoch for customer, item, epoch in rows}


def _without_rejected(rows, rejections):
    """The negative signal: drop a customer's events on an item up to the moment they rejected it.

    What the customer did with the item no longer counts as evidence of liking it, neither in training
    nor when their history is scored; events after the feedback (they changed their mind) stay.
    """
    if not rejections or not len(rows):
        return rows
    customers = np.fromiter((c for c, _i in rejections), dtype=np.int64)
    items = np.fromiter((i for _c, i in rejections), dtype=np.int64)
    suspects = np.flatnonzero(np.isin(rows[:, 0], customers) & np.isin(rows[:, 1], items))
    drop = [n for n in suspects if rows[n, 3] <= rejections.get((int(rows[n, 0]), int(rows[n, 1])), -1)]
    return np.delete(rows, drop, axis=0)


def interactions_load(*, until=None, since=None, item_ids=None, types=None):
    """All customers' item events in [since, until) as model inputs.

    `item_ids` fixes the item index (a trained model's); events on other items are left out.
    """
    rows = _event_rows(until=until, since=since, types=types)
    if item_ids is None:
        item_ids = np.unique(rows[:, 1])
    return _group(rows, np.asarray(item_ids, dtype=np.int64))


def _group(rows, item_ids):
    # item_ids is sorted (np.unique at training time), so the index is a binary search.
    mapped = np.searchsorted(item_ids, rows[:, 1]).clip(max=max(len(item_ids) - 1, 0))
    keep = (item_ids[mapped] == rows[:, 1]) if len(item_ids) else np.zeros(len(rows), dtype=bool)
    rows, mapped = rows[keep], mapped[keep]
    customers, starts = np.unique(rows[:, 0], return_index=True)
    bounds = list(starts[1:]) + [len(rows)]
    histories = [mapped[a:b] for a, b in zip(starts, bounds)]
    types = [rows[a:b, 2] for a, b in zip(starts, bounds)]
    stamps = [rows[a:b, 3] for a, b in zip(starts, bounds)]
    return Interactions(customers, item_ids, histories, types, stamps)


def histories_for(*, customer_ids, item_ids):
    """Current histories of the given customers over a trained model's item index, in their order."""
    grouped = _group(_event_rows(customer_ids=customer_ids), np.asarray(item_ids, dtype=np.int64))
    position = {int(c): i for i, c in enumerate(grouped.customer_ids)}
    empty = np.empty(0, dtype=np.int64)
    pick = lambda series, c: series[position[c]] if c in position else empty  # noqa: E731
    return (
        [pick(grouped.histories, int(c)) for c in customer_ids],
        [pick(grouped.event_types, int(c)) for c in customer_ids],
        [pick(grouped.timestamps, int(c)) for c in customer_ids],
    )


def purchased_items(*, customer_ids):
    """Per customer, the database ids of the items they bought."""
    return _items_by_type(customer_ids, EventType.PURCHASE)


def not_interested_items(*, customer_ids):
    """Per customer, the database ids of the items they said "not interested" in: never recommended to them."""
    return _items_by_type(customer_ids, EventType.NOT_INTERESTED)


def _items_by_type(customer_ids, event_type):
    found = {int(c): set() for c in customer_ids}
    rows = (
        Event.objects.filter(customer_id__in=list(found), type=event_type, item__isnull=False)
        .values_list("customer_id", "item_id")
        .distinct()
    )
    for customer, item in rows:
        found[customer].add(item)
    return found


def item_features(item_ids):
    """Side information per item index: category path prefixes, brand and price band, as token ids."""
    items = Item.objects.in_bulk([int(i) for i in item_ids])
    prices = np.array(
        [float(items[int(i)].price) for i in item_ids if int(i) in items and items[int(i)].price is not None]
    )
    edges = np.quantile(prices, [0.2, 0.4, 0.6, 0.8]) if len(prices) else np.array([])
    vocabulary, features = {}, []
    for item_id in item_ids:
        item = items.get(int(item_id))
        tokens = []
        if item is not None:
            levels = [level.strip() for level in item.category_path.split(">") if level.strip()]
            tokens += ["cat:" + " > ".join(levels[: depth + 1]) for depth in range(len(levels))]
            tokens += [f"brand:{item.brand}"] if item.brand else []
            if item.price is not None and len(edges):
                tokens.append(f"price:{int(np.searchsorted(edges, float(item.price)))}")
        features.append(np.array([vocabulary.setdefault(t, len(vocabulary)) for t in tokens], dtype=np.int64))
    return features


@dataclass
class Orders:
    """Every customer's purchases as model inputs, with the order each belongs to."""

    customer_ids: np.ndarray  # database ids, one per history
    item_ids: np.ndarray  # database ids; item_ids[index] is the item behind model index `index`
    histories: list  # per customer: item indices in time order
    timestamps: list  # per customer: seconds since the epoch
    orders: list  # per customer: each purchase's order number (recommender.ml.baskets.order_numbers)

    @property
    def n_events(self):
        return int(sum(len(h) for h in self.histories))


def purchase_orders_load(*, until=None):
    """Every customer's purchases of items (quantity above 0) before ``until`` in time order, grouped into
    orders.

    An order is the shop's order id where the event names one, else the customer's purchases at the
    same moment.
    """
    rows = _purchase_rows(until=until)
    if not rows:
        empty = np.empty(0, dtype=np.int64)
        return Orders(empty, empty, [], [], [])
    items = np.asarray([row[1] for row in rows], dtype=np.int64)
    return _orders_of(rows, np.unique(items))


def purchase_orders_for(*, customer_ids, item_ids):
    """The given customers' purchases (quantity above 0) over a trained model's item index, grouped into
    orders: (histories, timestamps, orders), one each per customer in the order given (empty where none).
    What serving scores a model fitted on orders with."""
    empty = np.empty(0, dtype=np.int64)
    rows = _purchase_rows(customer_ids=customer_ids) if len(customer_ids) else []
    if not rows:
        return [empty] * len(customer_ids), [empty] * len(customer_ids), [empty] * len(customer_ids)
    grouped = _orders_of(rows, np.asarray(item_ids, dtype=np.int64))
    position = {int(c): i for i, c in enumerate(grouped.customer_ids)}
    pick = lambda series, c: series[position[c]] if c in position else empty  # noqa: E731
    return tuple(
        [pick(series, int(c)) for c in customer_ids]
        for series in (grouped.histories, grouped.timestamps, grouped.orders)
    )


def _purchase_rows(*, customer_ids=None, until=None):
    return _select(
        f"customer_id, item_id, {_epoch_sql()}, order_id",
        types=[EventType.PURCHASE.value],
        customer_ids=customer_ids,
        until=until,
        tail="AND quantity > 0 ORDER BY customer_id, occurred_at, id",
    )


def _orders_of(rows, item_ids):
    """Orders over the sorted ``item_ids`` from (customer, item, epoch, order id) rows in customer and time
    order; purchases of other items are left out (their order numbers are counted before that)."""
    customers, items, epochs, order_ids = zip(*rows)
    customers, items = np.asarray(customers, dtype=np.int64), np.asarray(items, dtype=np.int64)
    epochs = np.asarray(epochs, dtype=np.int64)
    order_ids = np.asarray(order_ids, dtype=object)
    mapped = np.searchsorted(item_ids, items).clip(max=max(len(item_ids) - 1, 0))
    known = (item_ids[mapped] == items) if len(item_ids) else np.zeros(len(items), dtype=bool)
    ids, starts = np.unique(customers, return_index=True)
    bounds = list(starts[1:]) + [len(rows)]
    histories, stamps, orders = [], [], []
    for a, b in zip(starts, bounds):
        numbers = order_numbers(epochs[a:b], list(order_ids[a:b]))
        keep = known[a:b]
        histories.append(mapped[a:b][keep])
        stamps.append(epochs[a:b][keep])
        orders.append(numbers[keep])
    return Orders(customer_ids=ids, item_ids=item_ids, histories=histories, timestamps=stamps, orders=orders)


def time_split(data, *, val_quantile=0.8, test_quantile=0.9):
    """A time-based split in the shape of recommender.ml.data.Split.

    Two cut-offs at quantiles of all event times. Training is everything before the first; the
    validation target is a customer's first *new* item (not in their history) between the cut-offs;
    the test target their first new item after the second, predicted from all their events before it.
    Customers lacking any of the three parts still train but are not evaluated.
    """
    stamps = np.concatenate([t for t in data.timestamps if len(t)])
    t_val, t_test = np.quantile(stamps, [val_quantile, test_quantile])
    train, val_t, test_t, test_hist, users = [], [], [], [], []
    for user, (items, times) in enumerate(zip(data.histories, data.timestamps)):
        before_val, before_test = items[times < t_val], items[times < t_test]
        val = _first_new(items[(times >= t_val) & (times < t_test)], before_val)
        test = _first_new(items[times >= t_test], before_test)
        train.append(before_val)
        test_hist.append(before_test)
        val_t.append(val)
        test_t.append(test)
        if len(before_val) and val >= 0 and test >= 0:
            users.append(user)
    split = TimeSplit(
        train,
        np.array(val_t),
        np.array(test_t),
        np.array(users, dtype=np.int64),
        len(data.item_ids),
        len(data.histories) - len(users),
    )
    split.extra.update(test_history=test_hist, cutoffs=(float(t_val), float(t_test)))
    return split


def _first_new(items, history):
    seen = set(history.tolist())
    return next((int(i) for i in items if int(i) not in seen), -1)


class TimeSplit(Split):
    """A Split whose test history is everything before the test cut-off."""

    def test_histories(self):
        return [self.extra["test_history"][u] for u in self.eval_users]
