"""Customer x item-set features at a cut-off, and the labels that follow it.

Everything here reads a purchase log as NumPy arrays (customer index, item index, day, value) and uses
only the purchases strictly before the cut-off for features; labels read [cutoff, cutoff + days). Days
are floats (any origin: the Django side uses days since the Unix epoch), so "before the cut-off" is one
comparison and a test can plant a purchase after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

NEVER = 3650.0  # days since a purchase that never happened (trees split on it like any large number)
SET_WINDOWS = (14, 28, 56, 90, 182, 365)  # distinct purchase days in the set over these many days
GROUP_WINDOWS = (28, 90, 365)
ALL_WINDOWS = (14, 28, 90, 365)
# The features read the last HISTORY_DAYS before the cut-off and nothing older, so production (which loads
# about this much of the log, recommender.response) computes the same numbers as a backtest on the whole log.
HISTORY_DAYS = 365


@dataclass(frozen=True)
class Purchases:
    """A purchase log: one row per item bought (parallel arrays)."""

    customer: np.ndarray  # int, 0 .. n_customers - 1
    item: np.ndarray  # int, 0 .. n_items - 1
    day: np.ndarray  # float, days since any fixed origin
    value: np.ndarray  # float, money paid
    n_customers: int
    n_items: int

    @classmethod
    def of(cls, customer, item, day, value=None, *, n_customers=None, n_items=None):
        customer, item = np.asarray(customer, np.int64), np.asarray(item, np.int64)
        day = np.asarray(day, np.float64)
        value = np.ones(len(day)) if value is None else np.asarray(value, np.float64)
        return cls(
            customer,
            item,
            day,
            value,
            int(n_customers if n_customers is not None else (customer.max() + 1 if len(customer) else 0)),
            int(n_items if n_items is not None else (item.max() + 1 if len(item) else 0)),
        )

    def window(self, start, end):
        """The purchases with start <= day < end."""
        keep = (self.day >= start) & (self.day < end)
        return Purchases(
            self.customer[keep], self.item[keep], self.day[keep], self.value[keep], self.n_customers, self.n_items
        )


def response_labels(purchases, *, cutoff, item_set, customers, days=14):
    """1 where the customer buys at least one item of the set in [cutoff, cutoff + days), else 0."""
    after = purchases.window(cutoff, cutoff + days)
    bought = np.zeros(purchases.n_customers, bool)
    bought[after.customer[np.asarray(item_set, bool)[after.item]]] = True
    return bought[np.asarray(customers, np.int64)].astype(np.int8)


class CutoffFeatures:
    """The features of any (customer, item set) at one cut-off, from the purchases before it only.

    ``item_group`` (int per item, -1 for none) names each item's category; an item set's "categories" are
    the groups of its items. ``demographics`` is an optional (n_customers, k) float matrix (NaN unknown).
    The per-customer parts that do not depend on the set are computed once here. Only the HISTORY_DAYS
    before the cut-off are read.
    """

    def __init__(
        self, purchases, *, cutoff, item_group=None, demographics=None, demographic_names=(), days=14, popularity=None
    ):
        self.cutoff = float(cutoff)
        # A log that holds only some customers (production reads a chunk's) cannot count the shop's buyers of
        # a set: ``popularity(item_set)`` then gives what _set_popularity gives on the whole log.
        self.popularity = popularity
        self.days = float(days)
        self.past = purchases.window(self.cutoff - HISTORY_DAYS, self.cutoff)
        self.n_customers, self.n_items = purchases.n_customers, purchases.n_items
        self.item_group = None if item_group is None else np.asarray(item_group, np.int64)
        self.demographics = demographics
        self.demographic_names = tuple(demographic_names)
        self._customer = self._customer_part()

    def _customer_part(self):
        past, n = self.past, self.n_customers
        days = _distinct_days(past.customer, past.day, np.ones(len(past.day), bool))
        out = {"all_days_since": _recency(days, n, self.cutoff)}
        for w in ALL_WINDOWS:
            out[f"all_days_{w}"] = _count_since(days, n, self.cutoff - w)
        recent = past.day >= self.cutoff - 90
        out["all_spend_90"] = np.bincount(past.customer[recent], weights=past.value[recent], minlength=n)
        first = np.full(n, np.inf)
        np.minimum.at(first, past.customer, past.day)
        out["tenure_days"] = np.where(np.isfinite(first), self.cutoff - first, 0.0)
        out["all_interval"] = _interval(days, n, self.cutoff - 365)
        out["all_blocks_182"] = _blocks(days, n, self.cutoff, self.days, 182)
        out["all_blocks_365"] = _blocks(days, n, self.cutoff, self.days, 365)
        return out

    def features(self, item_set, customers, *, recommender_mass=None):
        """A DataFrame, one row per customer given (int indices), for this item set (bool mask over items).

        ``recommender_mass`` (optional, one per customer given): a recommender's probability mass on the set,
        from a recommender trained on purchases before the cut-off only (the caller's duty)."""
        frame = self.rows(self.set_columns(item_set), customers)
        if recommender_mass is not None:
            frame["recommender_mass"] = np.asarray(recommender_mass, np.float64)
        return frame

    def rows(self, set_columns, customers):
        """The features of these customers (int indices) from ``set_columns(item_set)``: what ``features``
        gives. A caller that asks for the same set again and again (generation, a chunk of customers at a
        time) keeps the set's columns: they cost a pass over the log, a chunk's rows only an index."""
        customers = np.asarray(customers, np.int64)
        columns, popularity = set_columns
        frame = pd.DataFrame({name: values[customers] for name, values in {**columns, **self._customer}.items()})
        for name, value in popularity.items():
            frame[name] = value
        if self.demographics is not None:
            for k, name in enumerate(self.demographic_names):
                frame[f"demo_{name}"] = self.demographics[customers, k]
        return frame

    def set_columns(self, item_set):
        """Every customer's features of this item set that depend on it, and the set's shop-wide ones:
        ({name: one value per customer}, {name: one value})."""
        item_set = np.asarray(item_set, bool)
        past, n, cutoff = self.past, self.n_customers, self.cutoff
        columns = {}
        in_set = item_set[past.item]
        days = _distinct_days(past.customer, past.day, in_set)
        columns["set_days_since"] = _recency(days, n, cutoff)
        for w in SET_WINDOWS:
            columns[f"set_days_{w}"] = _count_since(days, n, cutoff - w)
        columns["set_interval"] = _interval(days, n, cutoff - 365)
        columns["set_due"] = columns["set_days_since"] / np.maximum(columns["set_interval"], 1.0)
        recent = in_set & (past.day >= cutoff - 90)
        columns["set_spend_90"] = np.bincount(past.customer[recent], weights=past.value[recent], minlength=n)
        columns["set_items_365"] = _distinct_items(past, in_set & (past.day >= cutoff - 365), n)
        columns["set_share_365"] = columns["set_days_365"] / np.maximum(self._customer["all_days_365"], 1)
        columns["set_share_90"] = columns["set_days_90"] / np.maximum(self._customer["all_days_90"], 1)
        # The label's own history: in how many past windows of the label's length the customer bought in the
        # set, out of those in which they shopped at all.
        for w in (182, 365):
            hits = _blocks(days, n, cutoff, self.days, w)
            columns[f"set_blocks_{w}"] = hits
            columns[f"set_block_rate_{w}"] = hits / np.maximum(self._customer[f"all_blocks_{w}"], 1)
        for half_life in (14, 60):
            columns[f"set_decayed_{half_life}"] = _decayed(days, n, cutoff, half_life)
        columns["set_expected_days"] = columns["set_share_365"] * self._customer["all_days_28"] * self.days / 28
        if self.item_group is not None:
            groups = np.unique(self.item_group[item_set])
            in_group = np.isin(self.item_group[past.item], groups[groups >= 0]) & ~in_set
            group_days = _distinct_days(past.customer, past.day, in_group)
            columns["group_days_since"] = _recency(group_days, n, cutoff)
            for w in GROUP_WINDOWS:
                columns[f"group_days_{w}"] = _count_since(group_days, n, cutoff - w)
        popularity = self._set_popularity(item_set, days) if self.popularity is None else self.popularity(item_set)
        return columns, popularity

    def _set_popularity(self, item_set, days):
        """How common the set is in the whole shop just before the cut-off (the same for every customer)."""
        active = max(int((self._customer["all_days_90"] > 0).sum()), 1)
        return {
            "set_buyers_14": _count_since(days, self.n_customers, self.cutoff - 14).astype(bool).sum() / active,
            "set_buyers_28": _count_since(days, self.n_customers, self.cutoff - 28).astype(bool).sum() / active,
            "set_buyers_90": _count_since(days, self.n_customers, self.cutoff - 90).astype(bool).sum() / active,
            "set_size_log": float(np.log1p(item_set.sum())),
        }


def _distinct_days(customer, day, keep):
    """The distinct (customer, whole day) pairs of the kept purchases, as two arrays."""
    if not keep.any():
        return np.zeros(0, np.int64), np.zeros(0)
    return unique_pairs(np.asarray(customer[keep], np.int64), np.floor(day[keep]))


def unique_pairs(first, second):
    """The distinct (first, second) pairs, sorted by first then second, as two arrays: what
    ``np.unique(np.stack([first, second], axis=1), axis=0)`` gives, from a sort of one int64 key per pair
    (np.unique along an axis sorts rows as structured records, about ten times slower). ``first``: integers
    from 0; ``second``: whole numbers (integers, or floats with no fraction, as ``np.floor`` gives). Falls
    back to np.unique along the axis where the key would not fit in an int64."""
    if not len(first):
        return first[:0], second[:0]
    low, high = second.min(), second.max()
    span = int(high - low) + 1 if np.isfinite(low) and np.isfinite(high) else 0
    exact = span > 0 and float(high - low) < 2**52 and np.array_equal(second, np.floor(second))
    if not exact or first.min() < 0 or int(first.max()) >= (2**62) // span:
        pairs = np.unique(np.stack([first, second], axis=1), axis=0)
        return pairs[:, 0].astype(first.dtype), pairs[:, 1].astype(second.dtype)
    key = first.astype(np.int64) * span + (second - low).astype(np.int64)
    if len(key) > 1 and bool((key[1:] >= key[:-1]).all()):  # already in order (a log sorted by customer, day)
        key = key[np.concatenate(([True], key[1:] != key[:-1]))]
    else:
        key = np.unique(key)
    return (key // span).astype(first.dtype), ((key % span) + low).astype(second.dtype)


def _recency(days, n, cutoff):
    customer, day = days
    last = np.full(n, -np.inf)
    np.maximum.at(last, customer, day)
    return np.where(np.isfinite(last), cutoff - last, NEVER)


def _count_since(days, n, start):
    customer, day = days
    return np.bincount(customer[day >= np.floor(start)], minlength=n).astype(np.float64)


def _interval(days, n, start):
    """Mean days between distinct purchase days since start; NaN with fewer than two."""
    customer, day = days
    keep = day >= np.floor(start)
    customer, day = customer[keep], day[keep]
    count = np.bincount(customer, minlength=n)
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(first, customer, day)
    np.maximum.at(last, customer, day)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= 2, (last - first) / (count - 1), np.nan)


def _blocks(days, n, cutoff, length, span):
    """How many of the windows [cutoff - (k + 1) * length, cutoff - k * length) within ``span`` days hold a day."""
    customer, day = days
    keep = day >= np.floor(cutoff - span)
    block = ((cutoff - day[keep] - 1e-9) // length).astype(np.int64)
    if not keep.any():
        return np.zeros(n)
    # -block: in a log sorted by customer and day the pairs then come in order (only their count is used)
    customers, _blocks_held = unique_pairs(customer[keep], -block)
    return np.bincount(customers, minlength=n).astype(np.float64)


def _decayed(days, n, cutoff, half_life):
    """Distinct purchase days weighted 0.5 ** (age / half_life)."""
    customer, day = days
    return np.bincount(customer, weights=0.5 ** ((cutoff - day) / half_life), minlength=n)


def _distinct_items(past, keep, n):
    if not keep.any():
        return np.zeros(n)
    customers, _items = unique_pairs(np.asarray(past.customer[keep], np.int64), np.asarray(past.item[keep], np.int64))
    return np.bincount(customers, minlength=n).astype(np.float64)
