"""Orders (baskets) within a customer's history.

A history is a customer's item events in time order. ``orders`` is an array aligned with it: the number of
the order (basket) each event belongs to, 0 for the first order, increasing with time. The shop may name
its orders (``Event.order_id``); where it names none, a customer's purchases at the same moment form one
order (:func:`order_numbers`). The basket models (``topfreq.py``, ``tifuknn.py``) and the next-basket
evaluation (``next_basket.py``) read baskets through :func:`baskets_of`.
"""

from __future__ import annotations

import numpy as np


def order_numbers(timestamps, order_ids=None):
    """The order number of each event of one history (time order): 0, 1, ... by each order's first event.

    ``order_ids``: the shop's order id per event, None (or an empty text) where an event names none. Events
    naming the same order id are one order; events naming none are grouped by their timestamp, so a
    customer's purchases at the same moment form one order. Without timestamps either, each event is its
    own order.
    """
    n = len(timestamps) if timestamps is not None else (len(order_ids) if order_ids is not None else 0)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if timestamps is None:
        keys = np.char.add("e", np.arange(n).astype(str))
    else:
        keys = np.char.add("t", np.asarray(timestamps).astype(np.int64).astype(str))
    if order_ids is not None:
        ids = np.array(["" if o is None or o != o else str(o) for o in order_ids])
        keys = np.where(ids != "", np.char.add("o", ids), keys)
    _unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))  # numbered by first appearance
    return rank[inverse.ravel()]


def order_numbers_by_customer(customers, timestamps, order_ids):
    """:func:`order_numbers` of every customer at once: ``customers`` (sorted), ``timestamps`` and ``order_ids``
    (an object array of texts and None) aligned, each customer's rows in time order.

    Per customer: events naming the same order id are one order, events naming none (None or "") one order
    per timestamp; orders are numbered 0, 1, ... by their first event.
    """
    customers, order_ids = np.asarray(customers), np.asarray(order_ids, dtype=object)
    n = len(customers)
    if not n:
        return np.zeros(0, np.int64)
    named = np.not_equal(order_ids, None) & np.not_equal(order_ids, "")
    value = np.asarray(timestamps).astype(np.int64)
    if named.any():
        value[named] = np.unique(order_ids[named].astype(str), return_inverse=True)[1].ravel()
    position = np.arange(n)
    # rows of one (customer, named or not, id or time) are one order: sorted together, first event first
    sort = np.lexsort((position, value, named, customers))
    s_customer, s_named, s_value = customers[sort], named[sort], value[sort]
    starts = np.ones(n, dtype=bool)
    starts[1:] = (s_customer[1:] != s_customer[:-1]) | (s_named[1:] != s_named[:-1]) | (s_value[1:] != s_value[:-1])
    group = np.cumsum(starts) - 1
    first = sort[starts]  # each order's first row: rows are in customer order, so ordering by it orders by customer too
    by_first = np.argsort(first, kind="stable")
    rank = np.empty(len(first), np.int64)
    rank[by_first] = np.arange(len(first))
    owner = customers[first[by_first]]
    customer_start = np.searchsorted(owner, owner)  # the rank of each customer's first order
    number = rank - customer_start[rank]
    out = np.empty(n, np.int64)
    out[sort] = number[group]
    return out


def basket_arrays(history, orders=None, timestamps=None):
    """(items, basket, times): each order's distinct items flat, the basket number (0 = oldest, no gaps)
    of each, and each basket's time (its first event's timestamp, or position without timestamps).
    """
    history = np.asarray(history, dtype=np.int64)
    if not len(history):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    if orders is None:  # without timestamps either, each event is its own order
        orders = order_numbers(timestamps) if timestamps is not None else np.arange(len(history))
    orders = np.asarray(orders, dtype=np.int64)
    stamps = np.arange(len(history), dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
    times = np.full(int(orders.max()) + 1, np.inf)
    np.minimum.at(times, orders, stamps)
    sort = np.lexsort((history, orders))
    order_sorted, items = orders[sort], history[sort]
    distinct = np.ones(len(items), dtype=bool)
    distinct[1:] = (order_sorted[1:] != order_sorted[:-1]) | (items[1:] != items[:-1])
    order_sorted, items = order_sorted[distinct], items[distinct]
    used, basket = np.unique(order_sorted, return_inverse=True)  # orders with no event left drop out
    return items, basket.ravel(), times[used]


def baskets_of(history, orders=None, timestamps=None):
    """(baskets, times): the distinct items of each order of one history, oldest first, and each order's time.

    ``orders`` as :func:`order_numbers` returns (computed from ``timestamps`` when not given). An order's
    time is its first event's timestamp (its position when there are no timestamps).
    """
    items, basket, times = basket_arrays(history, orders, timestamps)
    if not len(items):
        return [], times
    bounds = np.searchsorted(basket, np.arange(1, len(times)))
    return np.split(items, bounds), times
