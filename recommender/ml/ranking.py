"""Scoring histories chunk by chunk, hiding what may not be ranked, and taking the top K.

This is the one loop behind a model's ``recommend()``, the offline evaluation (``evaluation.py``)
and the Django side's serving (``recommender/serving.py``): they differ only in where the chunks
come from (in-memory histories, or customers read from the database), what a chunk hides (the
history, a promotion's other items, what a customer may not be shown) and what they do with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHUNK = 1024  # histories scored at once: bounds memory at CHUNK x n_items floats


@dataclass
class ScoredChunk:
    """One chunk of histories with their scores and what may not be ranked."""

    key: object  # what the chunk source named it: a slice of the input, or the customers it holds
    histories: list
    scores: np.ndarray  # (n, n_items) float, as the scorer returned them (nothing set to -inf)
    hidden: np.ndarray  # (n, n_items) bool, True where an item may not be ranked or shown

    def masked(self):
        """The scores with every hidden item at -inf (a new array)."""
        return np.where(self.hidden, -np.inf, self.scores)

    def top(self, k):
        """The k best items not hidden per row, best first: (items (n, k), scores (n, k)).

        A row with fewer than k items left ends in items scored -inf.
        """
        return top_k(self.masked(), k)


def chunks_of(histories, context=None, size=CHUNK):
    """Yield (rows, histories, context) per slice of in-memory histories and their context arrays."""
    context = {name: values for name, values in (context or {}).items() if values is not None}
    for start in range(0, len(histories), size):
        rows = slice(start, start + size)
        yield rows, histories[rows], {name: values[rows] for name, values in context.items()}


def scored_chunks(score, chunks, hide=None):
    """Score each chunk and mark what it may not rank: yields a :class:`ScoredChunk` per chunk.

    ``score(histories, **context)`` returns (n, n_items) scores (``model.score``, or
    ``model.predict_proba``); ``chunks`` yields ``(key, histories, context)`` (see
    :func:`chunks_of`); ``hide(key, histories, n_items)`` returns the boolean (n, n_items) mask of
    items to leave out (default: none, e.g. :func:`hide_seen`).
    """
    for key, histories, context in chunks:
        scores = np.asarray(score(histories, **context))
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        n_items = scores.shape[1]
        hidden = hide(key, histories, n_items) if hide else np.zeros(scores.shape, dtype=bool)
        yield ScoredChunk(key, histories, scores, hidden)


def hide_seen(_key, histories, n_items):
    """A ``hide`` for :func:`scored_chunks`: the items of each history."""
    return seen_mask(histories, n_items)


def seen_mask(histories, n_items):
    """Boolean (n, n_items) mask of items present in each history."""
    mask = np.zeros((len(histories), n_items), dtype=bool)
    for row, hist in enumerate(histories):  # O(total events); cheap next to scoring
        mask[row, np.asarray(hist, dtype=np.int64)] = True
    return mask


def top_k(scores, k):
    """Indices and values of the k best scores per row, best first (vectorised)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
