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
    feats = np.stack(
        [
            np.log1p(count),
            count / n_orders,
            decay_fast,
            decay_slow,
            tifu,
            np.log1p(days_since),
            np.log1p(interval),
            once.astype(np.float64),
            np.log1p(np.minimum(due, 50.0)),
            np.abs(np.log((days_since + 1.0) / (interval + 1.0))),
            np.minimum(cv, 3.0),
            last_basket.astype(np.float64),
            np.log1p(popularity[distinct, 0]),
        ],
        axis=1,
    ).astype(np.float32)
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
