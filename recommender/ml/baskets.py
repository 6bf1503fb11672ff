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
        keys = [("e", i) for i in range(n)]
    else:
        keys = [("t", int(t)) for t in timestamps]
    if order_ids is not None:
        keys = [("o", str(o)) if o is not None and o == o and str(o) != "" else key for o, key in zip(order_ids, keys)]
    numbers, out = {}, np.empty(n, dtype=np.int64)
    for position, key in enumerate(keys):  # first appearance order = time order of each order's first event
        out[position] = numbers.setdefault(key, len(numbers))
    return out


def baskets_of(history, orders=None, timestamps=None):
    """(baskets, times): the distinct items of each order of one history, oldest first, and each order's time.

    ``orders`` as :func:`order_numbers` returns (computed from ``timestamps`` when not given). An order's
    time is its first event's timestamp (its position when there are no timestamps).
    """
    history = np.asarray(history, dtype=np.int64)
    if orders is None:  # without timestamps either, each event is its own order
        orders = order_numbers(timestamps) if timestamps is not None else np.arange(len(history))
    orders = np.asarray(orders, dtype=np.int64)
    if not len(history):
        return [], np.zeros(0, dtype=np.float64)
    n_orders = int(orders.max()) + 1
    stamps = np.arange(len(history), dtype=np.float64) if timestamps is None else np.asarray(timestamps, np.float64)
    times = np.full(n_orders, np.inf)
    np.minimum.at(times, orders, stamps)
    sort = np.argsort(orders, kind="stable")
    bounds = np.searchsorted(orders[sort], np.arange(n_orders + 1))
    baskets = [np.unique(history[sort[a:b]]) for a, b in zip(bounds[:-1], bounds[1:])]
    keep = [i for i, basket in enumerate(baskets) if len(basket)]
    return [baskets[i] for i in keep], times[keep]
