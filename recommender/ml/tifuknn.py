"""TIFU-KNN (Hu, He, Zhang, Zhang, Sun, Li; "Modeling Personalized Item Frequency Information for
Next-basket Recommendation", SIGIR 2020).

A customer's orders b_1 .. b_n (oldest first, binary item vectors) are cut into groups of ``group_size``
orders counted from the newest, so only the oldest group may hold fewer. Within a group of m orders the
j-th (1-based, oldest first) weighs ``within_decay ** (m - j)`` and the group vector is their weighted sum
divided by m; with k groups the i-th weighs ``group_decay ** (k - i)`` and the customer's vector (the
time-decayed personal item frequencies) is their weighted sum divided by k (the paper's equations 1-3).
The prediction mixes it with the mean vector of the customer's ``n_neighbors`` nearest customers
(Euclidean distance between these vectors, among the customers the model was fitted on):
``alpha * u + (1 - alpha) * mean(neighbours)``. As in the authors' code, a customer who was in the
training data finds themself among their neighbours. Sparse throughout: a vector holds only the items of
its customer's orders.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .base import BaseRecommender, catalogue_size, csr_from_state, csr_to_state
from .baskets import basket_arrays

QUERY_CHUNK = 512  # customers whose distances to all fitted customers are held at once


def group_weights(n_orders, group_size, within_decay, group_decay):
    """The weight of each of n orders (oldest first) in the customer's vector (paper, equations 1-3)."""
    if n_orders == 0:
        return np.zeros(0)
    n_groups = -(-n_orders // group_size)
    # the group of each order, counted from the newest: the oldest group takes the remainder
    from_newest = np.arange(n_orders)[::-1]
    group = n_groups - 1 - from_newest // group_size  # 0 = oldest group
    sizes = np.bincount(group, minlength=n_groups)
    start = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    j = np.arange(n_orders) - start[group] + 1  # 1-based position within the group
    m = sizes[group]
    within = within_decay ** (m - j) / m
    across = group_decay ** (n_groups - 1 - group) / n_groups
    return within * across


def personal_vectors(histories, n_items, *, orders, timestamps, group_size, within_decay, group_decay):
    """CSR (n_customers, n_items): each customer's time-decayed item frequency vector."""
    rows, cols, vals = [], [], []
    for row, history in enumerate(histories):
        items, basket, times = basket_arrays(
            history, None if orders is None else orders[row], None if timestamps is None else timestamps[row]
        )
        if not len(items):
            continue
        weights = group_weights(len(times), group_size, within_decay, group_decay)
        cols.append(items)
        vals.append(weights[basket])
        rows.append(np.full(len(items), row, dtype=np.int64))
    if not rows:
        return sp.csr_matrix((len(histories), n_items), dtype=np.float64)
    data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
    return sp.csr_matrix(data, shape=(len(histories), n_items), dtype=np.float64)  # duplicates are summed


class TIFUKNNRecommender(BaseRecommender):
    """TIFU-KNN: time-decayed personal item frequencies mixed with those of the nearest customers."""

    def __init__(self, group_size=7, within_decay=0.9, group_decay=0.7, n_neighbors=300, alpha=0.7):
        self.group_size = group_size
        self.within_decay = within_decay
        self.group_decay = group_decay
        self.n_neighbors = n_neighbors
        self.alpha = alpha

    def fit(
        self,
        histories,
        event_types=None,
        timestamps=None,
        item_features=None,
        validation=None,
        progress_callback=None,
        n_items=None,
        orders=None,
    ):
        """Build every training customer's vector (the neighbours' side); returns self."""
        self.n_items_ = catalogue_size(histories, n_items)
        vectors = self._vectors(histories, orders, timestamps)
        keep = np.flatnonzero(vectors.getnnz(axis=1) > 0)  # a customer without orders is nobody's neighbour
        self.neighbours_ = vectors[keep].tocsr()
        return self

    def _vectors(self, histories, orders, timestamps):
        return personal_vectors(
            histories,
            self.n_items_,
            orders=orders,
            timestamps=timestamps,
            group_size=int(self.group_size),
            within_decay=float(self.within_decay),
            group_decay=float(self.group_decay),
        )

    def score(self, histories, timestamps=None, orders=None, **context):
        """alpha * personal vector + (1 - alpha) * mean of the nearest customers' vectors, dense (n, n_items)."""
        self._check_fitted()
        query = self._vectors(histories, orders, timestamps)
        out = np.empty((len(histories), self.n_items_), dtype=np.float32)
        for start in range(0, len(histories), QUERY_CHUNK):
            part = query[start : start + QUERY_CHUNK]
            nearest = self.nearest(part)
            mix = sp.csr_matrix(
                (
                    np.full(nearest.size, 1.0 / max(nearest.shape[1], 1)),
                    nearest.ravel(),
                    np.arange(0, nearest.size + 1, max(nearest.shape[1], 1)),
                ),
                shape=(part.shape[0], self.neighbours_.shape[0]),
            )
            neighbourhood = (mix @ self.neighbours_).toarray()
            out[start : start + part.shape[0]] = self.alpha * part.toarray() + (1.0 - self.alpha) * neighbourhood
        return out

    def score_items(self, histories, items, timestamps=None, orders=None, **context):
        """``score(...)[:, items]`` without building the dense (n, n_items) scores: what explanations need."""
        self._check_fitted()
        items = np.asarray(items, dtype=np.int64)
        query = self._vectors(histories, orders, timestamps)
        nearest = self.nearest(query)
        neighbours = self._derived()["by_column"][:, items].toarray()  # (fitted customers, len(items))
        neighbourhood = neighbours[nearest].mean(axis=1) if nearest.shape[1] else np.zeros((len(histories), len(items)))
        return (self.alpha * query[:, items].toarray() + (1.0 - self.alpha) * neighbourhood).astype(np.float32)

    def nearest(self, query):
        """(n, k) indices of each query vector's nearest fitted customers (Euclidean), nearest first."""
        derived = self._derived()
        k = min(int(self.n_neighbors), self.neighbours_.shape[0])
        if k == 0:
            return np.zeros((query.shape[0], 0), dtype=np.int64)
        query_squared = np.asarray(query.multiply(query).sum(axis=1)).ravel()
        products = (query @ derived["transposed"]).toarray()
        distance = query_squared[:, None] + derived["squared"][None, :] - 2.0 * products
        part = np.argpartition(distance, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distance, part, axis=1), axis=1, kind="stable")
        return np.take_along_axis(part, order, axis=1)

    def _derived(self):
        """Arrays computed once from the fitted vectors (explanations score a batch per recipient)."""
        if getattr(self, "_derived_for", None) is not self.neighbours_:
            fitted = self.neighbours_
            self._derived_cache = {
                "squared": np.asarray(fitted.multiply(fitted).sum(axis=1)).ravel(),
                "transposed": fitted.T.tocsr(),
                "by_column": fitted.tocsc(),
            }
            self._derived_for = fitted
        return self._derived_cache

    def explain(self, history, items):
        """The customer's last purchase of the item itself, else their most recent history item.

        The personal part of the score comes from the item's own past orders; a neighbourhood item has no
        single history item behind it.
        """
        history = np.asarray(history, np.int64)
        out = np.full(len(items), max(len(history) - 1, 0), dtype=np.int64)
        for row, item in enumerate(np.asarray(items, np.int64)):
            where = np.flatnonzero(history == item)
            if len(where):
                out[row] = where[-1]
        return out

    def _state(self):
        return csr_to_state("neighbours", self.neighbours_)

    def _set_state(self, arrays):
        self.neighbours_ = csr_from_state("neighbours", arrays, (len(arrays["neighbours_indptr"]) - 1, self.n_items_))
