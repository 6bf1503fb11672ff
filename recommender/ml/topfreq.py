"""Frequency baselines of next-basket recommendation: G-TopFreq and P-TopFreq (Li et al., TOIS 2023)."""

from __future__ import annotations

import numpy as np

from .base import BaseRecommender, catalogue_size
from .baskets import baskets_of
from .popularity import PopularityRecommender

WEEK = 7 * 86400.0


def basket_counts(history, orders=None, timestamps=None):
    """(items, counts): in how many of the history's orders each item appears."""
    baskets, _times = baskets_of(history, orders, timestamps)
    if not baskets:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.unique(np.concatenate(baskets), return_counts=True)


class GTopFreqRecommender(PopularityRecommender):
    """G-TopFreq: every customer gets the items bought in the most orders over the last ``weeks`` weeks.

    The window ends at the newest event of the training data (the cut-off's side of it); ``weeks=None``
    counts all of it. Without timestamps the window is every event. Only the counting differs from
    popularity: scoring, explaining and the saved state are PopularityRecommender's.
    """

    def __init__(self, weeks=4):
        self.weeks = weeks

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
        """Count the orders holding each item within the window; returns self."""
        self.n_items_ = catalogue_size(histories, n_items)
        counts = np.zeros(self.n_items_, dtype=np.float64)
        newest = max((float(np.max(t)) for t in timestamps if len(t)), default=0.0) if timestamps else 0.0
        since = -np.inf if (self.weeks is None or timestamps is None) else newest - float(self.weeks) * WEEK
        for row, history in enumerate(histories):
            stamps = None if timestamps is None else np.asarray(timestamps[row], np.float64)
            baskets, times = baskets_of(history, None if orders is None else orders[row], stamps)
            recent = [basket for basket, time in zip(baskets, times) if time >= since]
            if recent:
                np.add.at(counts, np.concatenate(recent), 1.0)
        self.popularity_ = counts.astype(np.float32)
        return self


class PTopFreqRecommender(BaseRecommender):
    """P-TopFreq: a customer's items ranked by the number of their orders holding each.

    Items the customer never bought follow, by how many orders of all customers hold them (G-TopFreq
    over the whole training data), so a short history still fills a list.
    """

    def __init__(self):
        pass

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
        """Learn the global order counts that break ties and fill lists; returns self."""
        glob = GTopFreqRecommender(weeks=None).fit(histories, timestamps=timestamps, n_items=n_items, orders=orders)
        self.n_items_, self.popularity_ = glob.n_items_, glob.popularity_
        return self

    def score(self, histories, timestamps=None, orders=None, **context):
        """Personal order counts, plus the global counts scaled below 1 (they only order what is left)."""
        self._check_fitted()
        fill = self.popularity_ / (float(self.popularity_.max()) + 1.0)
        out = np.tile(fill, (len(histories), 1))
        for row, history in enumerate(histories):
            items, counts = basket_counts(
                history, None if orders is None else orders[row], None if timestamps is None else timestamps[row]
            )
            out[row, items] += counts
        return out

    def explain(self, history, items):
        """The customer's last purchase of the item itself, else their most recent history item."""
        history = np.asarray(history, np.int64)
        out = np.full(len(items), max(len(history) - 1, 0), dtype=np.int64)
        for row, item in enumerate(np.asarray(items, np.int64)):
            where = np.flatnonzero(history == item)
            if len(where):
                out[row] = where[-1]
        return out

    def _state(self):
        return {"popularity_": self.popularity_}
