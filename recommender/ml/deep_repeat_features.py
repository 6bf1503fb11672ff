"""NumPy-side features of the repeat-aware deep model (deep_repeat.py): no TensorFlow here.

Everything is computed *at a reference time* ``now`` from the events strictly before it; an event at or
after ``now`` is dropped first (:func:`before`), so a purchase after a cut-off can never reach the
features of that cut-off.

Per (customer, item the customer bought before ``now``) the repeat part reads ``ITEM_FEATURES``:

- ``log_count``: log1p of the number of the customer's orders holding the item; ``share``: that number
  over the customer's orders;
- ``decay_fast``, ``decay_slow``: the item's order-recency-weighted frequency (weights 0.7 and 0.95 per
  order back, normalised), and ``tifu``: its TIFU-KNN personal value (groups of 7 orders, 0.9 / 0.7);
- ``log_days_since``: log1p of the days since the customer last bought it; ``log_interval``: log1p of
  the mean days between the customer's purchases of it (bought once: the days since the first order);
  ``once``: bought in a single order; ``log_due``: log1p of days since / interval (how due it is),
  ``off_due``: |log((days since + 1) / (interval + 1))| (how far from its usual rhythm) and
  ``interval_cv``: the coefficient of variation of the days between its purchases (0: like clockwork;
  1 where bought fewer than three times);
- ``in_last``: in the customer's last order; ``log_pop``: log1p of the orders of all customers holding
  it over the ``POP_DAYS`` before ``now``.

Per customer, ``CUSTOMER_FEATURES``: log1p of the number of orders, of the mean basket size, of the days
since the last order and of the mean days between orders, and the share of the items of the last (up to
10) orders that were new to the customer then (how much they explore).
"""

from __future__ import annotations

import numpy as np

from .baskets import basket_arrays
from .tifuknn import group_weights

DAY = 86400.0
POP_DAYS = 28
ITEM_FEATURES = (
    "log_count",
    "share",
    "decay_fast",
    "decay_slow",
    "tifu",
    "log_days_since",
    "log_interval",
    "once",
    "log_due",
    "off_due",
    "interval_cv",
    "in_last",
    "log_pop",
)
POPULARITY = ("orders_28d", "orders_7d", "first_buyers_28d")
CUSTOMER_FEATURES = ("log_orders", "log_basket_size", "log_days_since_order", "log_order_gap", "new_share")


def item_feature_matrix(count, share, decay_fast, decay_slow, tifu, days_since, interval, once, due, cv, last, pop):
    """(n, len(ITEM_FEATURES)) float32, in that order, from per-item arrays: the one place both a customer's
    features (training, customer_features) and a serving chunk's (chunk_features) are put together."""
    return np.stack(
        [
            np.log1p(count),
            share,
            decay_fast,
            decay_slow,
            tifu,
            np.log1p(days_since),
            np.log1p(interval),
            once.astype(np.float64),
            np.log1p(np.minimum(due, 50.0)),
            np.abs(np.log((days_since + 1.0) / (interval + 1.0))),
            np.minimum(cv, 3.0),
            last.astype(np.float64),
            np.log1p(pop),
        ],
        axis=1,
    ).astype(np.float32)


def before(history, timestamps, orders, now):
    """The events of one history strictly before ``now``: (items, timestamps, orders)."""
    stamps = np.asarray(timestamps, np.float64)
    keep = stamps < now
    items = np.asarray(history, np.int64)[keep]
    numbers = None if orders is None else np.asarray(orders, np.int64)[keep]
    return items, stamps[keep], numbers


def order_popularity(histories, timestamps, orders, n_items, now, days=POP_DAYS):
    """(n_items, 3) float32 over the time before ``now``: per item, the orders of all customers holding it
    over the last ``days`` and over the last 7 days, and the customers who bought it for the first time
    in the last ``days`` (what the explore part reads; the first column is the repeat part's ``log_pop``).
    """
    counts = np.zeros((n_items, len(POPULARITY)), np.float64)
    since, week = now - days * DAY, now - 7 * DAY
    for row, history in enumerate(histories):
        items, stamps, numbers = before(history, timestamps[row], None if orders is None else orders[row], now)
        recent = stamps >= since
        if not recent.any():
            continue
        basket_items, basket, times = basket_arrays(
            items[recent], None if numbers is None else numbers[recent], stamps[recent]
        )
        np.add.at(counts[:, 0], basket_items, 1.0)
        np.add.at(counts[:, 1], basket_items[times[basket] >= week], 1.0)
        older = np.unique(items[~recent])
        np.add.at(counts[:, 2], np.setdiff1d(basket_items, older), 1.0)
    return counts.astype(np.float32)


def customer_features(history, timestamps, orders, now, popularity):
    """(items, item features (n, len(ITEM_FEATURES)), customer features (len(CUSTOMER_FEATURES),)).

    ``items``: the distinct items bought before ``now``, in increasing index order; empty arrays for a
    customer with no order before ``now``. ``popularity`` is :func:`order_popularity` at ``now``.
    """
    items, stamps, numbers = before(history, timestamps, orders, now)
    flat, basket, times = basket_arrays(items, numbers, stamps)
    n_feat, n_cust = len(ITEM_FEATURES), len(CUSTOMER_FEATURES)
    if not len(flat):
        return np.zeros(0, np.int64), np.zeros((0, n_feat), np.float32), np.zeros(n_cust, np.float32)
    n_orders = len(times)
    distinct, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.ravel()
    count = np.bincount(inverse, minlength=len(distinct)).astype(np.float64)
    back = (n_orders - 1 - basket).astype(np.float64)  # orders back from the newest, per (order, item)

    def decayed(rate):  # order-recency-weighted frequency: weights rate**orders-back, normalised
        total = (rate ** np.arange(n_orders)).sum()
        return np.bincount(inverse, weights=rate**back, minlength=len(distinct)) / total

    decay_fast, decay_slow = decayed(0.7), decayed(0.95)
    tifu = np.bincount(inverse, weights=group_weights(n_orders, 7, 0.9, 0.7)[basket], minlength=len(distinct))
    first_time = np.full(len(distinct), np.inf)
    last_time = np.full(len(distinct), -np.inf)
    np.minimum.at(first_time, inverse, times[basket])
    np.maximum.at(last_time, inverse, times[basket])
    days_since = np.maximum(now - last_time, 0.0) / DAY
    span_days = max(now - times[0], 0.0) / DAY
    once = count < 2
    interval = np.where(once, span_days, (last_time - first_time) / DAY / np.maximum(count - 1, 1))
    due = days_since / np.maximum(interval, 1.0)
    # the spread of each item's intervals: consecutive purchases of the same item, in (item, time) order
    by_item = np.lexsort((times[basket], inverse))
    item_sorted, time_sorted = inverse[by_item], times[basket][by_item] / DAY
    same = item_sorted[1:] == item_sorted[:-1]
    steps, owner = np.diff(time_sorted)[same], item_sorted[1:][same]
    n_steps = np.bincount(owner, minlength=len(distinct))
    mean_step = np.bincount(owner, weights=steps, minlength=len(distinct)) / np.maximum(n_steps, 1)
    var_step = np.bincount(owner, weights=steps**2, minlength=len(distinct)) / np.maximum(n_steps, 1) - mean_step**2
    cv = np.where(n_steps >= 2, np.sqrt(np.maximum(var_step, 0.0)) / np.maximum(mean_step, 1e-9), 1.0)
    last_basket = np.zeros(len(distinct), bool)
    last_basket[np.unique(inverse[basket == n_orders - 1])] = True
    feats = item_feature_matrix(
        count, count / n_orders, decay_fast, decay_slow, tifu, days_since, interval, once, due, cv, last_basket,
        popularity[distinct, 0],
    )  # fmt: skip
    sizes = np.bincount(basket, minlength=n_orders)
    # the share of each order's items that were new to the customer then, over the last 10 orders
    first_basket = np.full(len(distinct), n_orders, np.int64)
    np.minimum.at(first_basket, inverse, basket)
    new_per_order = np.bincount(first_basket, minlength=n_orders)[:n_orders]
    recent = slice(max(n_orders - 10, 1), n_orders)  # the first order is all new: not counted
    new_share = new_per_order[recent].sum() / max(sizes[recent].sum(), 1) if n_orders > 1 else 1.0
    gaps = np.diff(times) / DAY
    customer = np.array(
        [
            np.log1p(n_orders),
            np.log1p(sizes.mean()),
            np.log1p(max(now - times[-1], 0.0) / DAY),
            np.log1p(gaps.mean() if len(gaps) else span_days),
            new_share,
        ],
        dtype=np.float32,
    )
    return distinct, feats, customer


def first_order_after(history, timestamps, orders, start, end):
    """The distinct items of the customer's first order at or after ``start`` and before ``end`` (empty if none)."""
    stamps = np.asarray(timestamps, np.float64)
    window = (stamps >= start) & (stamps < end)
    if not window.any():
        return np.zeros(0, np.int64)
    history = np.asarray(history, np.int64)
    if orders is None:
        return np.unique(history[stamps == stamps[window].min()])
    orders = np.asarray(orders, np.int64)
    first = orders[window][np.argmin(stamps[window])]
    return np.unique(history[orders == first])


def chunk_features(histories, timestamps, orders, now, popularity):
    """:func:`customer_features` of a chunk of customers at once: (rows, items, item features, customer
    features (n, len(CUSTOMER_FEATURES))), where ``rows``/``items`` name each (customer row, bought item)
    of the item features, rows ascending and each customer's items in increasing index order.

    The same numbers as calling :func:`customer_features` per customer (to float32 rounding), from a few
    sorts over the chunk's events rather than some forty NumPy calls per customer: serving scores 500
    customers a chunk, where the calls' overhead, not the arithmetic, was the cost.
    """
    n_feat, n_cust = len(ITEM_FEATURES), len(CUSTOMER_FEATURES)
    events = _chunk_events(histories, timestamps, orders, now)
    customers = np.zeros((len(histories), n_cust), np.float32)
    if events is None:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, n_feat), np.float32), customers
    cust, item, stamp, order = events
    # the orders: one group per (customer, order number), numbered per customer in order-number order
    by_order = np.lexsort((order, cust))
    cust, item, stamp, order = cust[by_order], item[by_order], stamp[by_order], order[by_order]
    new_order = np.ones(len(cust), bool)
    new_order[1:] = (cust[1:] != cust[:-1]) | (order[1:] != order[:-1])
    group = np.cumsum(new_order) - 1
    group_start = np.flatnonzero(new_order)
    times = np.minimum.reduceat(stamp, group_start)  # an order's time: its first event's
    group_cust = cust[group_start]
    n_orders_of = np.bincount(group_cust, minlength=len(histories))
    first_group = np.concatenate([[0], np.cumsum(n_orders_of)[:-1]])
    # each order's distinct items: (order group, item) pairs once
    by_item = np.lexsort((item, group))
    g_sorted, i_sorted = group[by_item], item[by_item]
    keep = np.ones(len(g_sorted), bool)
    keep[1:] = (g_sorted[1:] != g_sorted[:-1]) | (i_sorted[1:] != i_sorted[:-1])
    flat_group, flat_item = g_sorted[keep], i_sorted[keep]
    flat_cust = group_cust[flat_group]
    basket = flat_group - first_group[flat_cust]  # 0 = the customer's first order
    n_orders = n_orders_of[flat_cust]
    flat_time = times[flat_group]
    # the (customer, item) pairs, in (customer, item, time) order
    by_pair = np.lexsort((flat_time, flat_item, flat_cust))
    p_cust, p_item, p_time = flat_cust[by_pair], flat_item[by_pair], flat_time[by_pair]
    p_basket, p_orders = basket[by_pair], n_orders[by_pair]
    new_pair = np.ones(len(p_cust), bool)
    new_pair[1:] = (p_cust[1:] != p_cust[:-1]) | (p_item[1:] != p_item[:-1])
    pair = np.cumsum(new_pair) - 1
    pair_start = np.flatnonzero(new_pair)
    n_pairs = len(pair_start)
    rows, items = p_cust[pair_start], p_item[pair_start]
    pair_orders = n_orders_of[rows].astype(np.float64)
    count = np.bincount(pair, minlength=n_pairs).astype(np.float64)
    back = (p_orders - 1 - p_basket).astype(np.float64)

    def decayed(rate):  # order-recency-weighted frequency, normalised by the sum of rate**k over the orders
        total = (1.0 - rate**pair_orders) / (1.0 - rate)
        return np.bincount(pair, weights=rate**back, minlength=n_pairs) / total

    tifu = np.bincount(pair, weights=_group_weights_at(p_orders, p_basket, 7, 0.9, 0.7), minlength=n_pairs)
    pair_end = np.concatenate([pair_start[1:], [len(pair)]]) - 1
    first_time, last_time = p_time[pair_start], p_time[pair_end]
    days_since = np.maximum(now - last_time, 0.0) / DAY
    # per customer row (a customer with no order has a row never read)
    span_days = np.maximum(now - times[np.minimum(first_group, len(times) - 1)], 0.0) / DAY
    once = count < 2
    interval = np.where(once, span_days[rows], (last_time - first_time) / DAY / np.maximum(count - 1, 1))
    due = days_since / np.maximum(interval, 1.0)
    same = ~new_pair[1:]
    steps, owner = np.diff(p_time / DAY)[same], pair[1:][same]
    n_steps = np.bincount(owner, minlength=n_pairs)
    mean_step = np.bincount(owner, weights=steps, minlength=n_pairs) / np.maximum(n_steps, 1)
    var_step = np.bincount(owner, weights=steps**2, minlength=n_pairs) / np.maximum(n_steps, 1) - mean_step**2
    cv = np.where(n_steps >= 2, np.sqrt(np.maximum(var_step, 0.0)) / np.maximum(mean_step, 1e-9), 1.0)
    last_basket = np.bincount(pair, weights=p_basket == p_orders - 1, minlength=n_pairs) > 0
    feats = item_feature_matrix(
        count, count / pair_orders, decayed(0.7), decayed(0.95), tifu, days_since, interval, once, due, cv,
        last_basket, popularity[items, 0],
    )  # fmt: skip
    first_basket = np.minimum.reduceat(p_basket, pair_start)  # the order each item was new in
    customers[:] = _chunk_customer_features(
        n_orders_of, first_group, times, basket, flat_cust, rows, first_basket, span_days, now
    )
    return rows, items, feats, customers


def _chunk_events(histories, timestamps, orders, now):
    """The chunk's events before ``now`` as flat (customer row, item, timestamp, order number) arrays, or None.
    A customer without order numbers has their orders from their timestamps (baskets.order_numbers)."""
    from .baskets import order_numbers

    parts = []
    for row, history in enumerate(histories):
        numbers = None if orders is None else orders[row]
        items, stamps, numbers = before(history, timestamps[row], numbers, now)
        if not len(items):
            continue
        if numbers is None:
            numbers = order_numbers(stamps)
        parts.append((np.full(len(items), row, np.int64), items, stamps, numbers))
    if not parts:
        return None
    return tuple(np.concatenate(column) for column in zip(*parts))


def _group_weights_at(n_orders, basket, group_size, within_decay, group_decay):
    """tifuknn.group_weights(n, ...)[basket] for each (n, basket) pair at once."""
    n_groups = -(-n_orders // group_size)
    group = n_groups - 1 - (n_orders - 1 - basket) // group_size  # 0 = oldest group, which takes the remainder
    oldest = n_orders - group_size * (n_groups - 1)
    m = np.where(group == 0, oldest, group_size)
    start = np.where(group == 0, 0, oldest + group_size * (group - 1))
    j = basket - start + 1
    within = within_decay ** (m - j) / m
    across = group_decay ** (n_groups - 1 - group) / n_groups
    return within * across


def _chunk_customer_features(n_orders_of, first_group, times, basket, flat_cust, rows, first_basket, span_days, now):
    """CUSTOMER_FEATURES per customer row (zeros for a customer with no order before ``now``)."""
    n = len(n_orders_of)
    out = np.zeros((n, len(CUSTOMER_FEATURES)))
    has = n_orders_of > 0
    count = np.maximum(n_orders_of, 1)
    last_time = times[np.minimum(first_group + n_orders_of - 1, len(times) - 1)]
    first_time = times[np.minimum(first_group, len(times) - 1)]
    lines = np.bincount(flat_cust, minlength=n)  # (order, item) pairs: the orders' sizes summed
    # the share of each order's items that were new to the customer then, over the last 10 orders
    recent_from = np.maximum(n_orders_of - 10, 1)  # the first order is all new: not counted
    recent_lines = np.bincount(flat_cust, weights=basket >= recent_from[flat_cust], minlength=n)
    recent_new = np.bincount(rows, weights=first_basket >= recent_from[rows], minlength=n)
    new_share = np.where(n_orders_of > 1, recent_new / np.maximum(recent_lines, 1), 1.0)
    gap = np.where(n_orders_of > 1, (last_time - first_time) / DAY / np.maximum(n_orders_of - 1, 1), span_days)
    out[:, 0] = np.log1p(n_orders_of)
    out[:, 1] = np.log1p(lines / count)
    out[:, 2] = np.log1p(np.maximum(now - last_time, 0.0) / DAY)
    out[:, 3] = np.log1p(gap)
    out[:, 4] = new_share
    out[~has] = 0.0
    return out.astype(np.float32)
