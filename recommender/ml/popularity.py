"""Time-decayed popularity baseline."""

from __future__ import annotations

import numpy as np

from .base import BaseRecommender


class PopularityRecommender(BaseRecommender):
    """Score every item by its (optionally time-decayed) event count.

    Decay: with ``timestamps`` (seconds) an event of age ``a`` (relative to
    the newest event in the data) weighs ``0.5 ** (a / half_life)``. Plain
    sequence files have no clock, so without timestamps the age is the
    event's position from the end of its own user's sequence (0 = latest),
    i.e. recent interests of each user weigh more. ``half_life=None`` gives
    plain counts. ``event_weights`` optionally maps event type id -> weight
    (e.g. purchase 1.0, cart 0.5, view 0.1).
    """

    def __init__(self, half_life=5.0, event_weights=None):
        self.half_life = half_life
        self.event_weights = event_weights

    def fit(
        self,
        histories,
        event_types=None,
        timestamps=None,
        item_features=None,
        validation=None,
        progress_callback=None,
        n_items=None,
    ):
        """Count (decayed, weighted) events per item; returns self."""
        items = np.concatenate([np.asarray(h, np.int64) for h in histories])
        self.n_items_ = int(n_items if n_items is not None else items.max() + 1)
        weights = np.ones(len(items), dtype=np.float64)
        if self.half_life:
            weights *= 0.5 ** (_ages(histories, timestamps) / float(self.half_life))
        if self.event_weights and event_types is not None:
            types = np.concatenate([np.asarray(t, np.int64) for t in event_types])
            lookup = {int(k): float(v) for k, v in self.event_weights.items()}
            weights *= np.array([lookup.get(int(t), 1.0) for t in types])
        self.popularity_ = np.bincount(items, weights=weights, minlength=self.n_items_).astype(np.float32)
        return self

    def score(self, histories, **context):
        """Same popularity vector for every history."""
        self._check_fitted()
        return np.broadcast_to(self.popularity_, (len(histories), self.n_items_))

    def explain(self, history, items):
        """Popularity is not personal: always points at the most recent history item."""
        return np.full(len(items), max(len(history) - 1, 0), dtype=np.int64)

    def _state(self):
        return {"popularity_": self.popularity_}


def _ages(histories, timestamps):
    """Age of every event: seconds before the newest event, or position from the user's end."""
    if timestamps is not None:
        stamps = np.concatenate([np.asarray(t, np.float64) for t in timestamps])
        return stamps.max() - stamps
    return np.concatenate([np.arange(len(h) - 1, -1, -1, dtype=np.float64) for h in histories])
