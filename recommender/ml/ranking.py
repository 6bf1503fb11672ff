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
BLOCK = 32  # top_k's column groups hold BLOCK columns: it reads every score once, then k groups a row


@dataclass
class SparseMask:
    """What a chunk may not rank as index lists: row ``rows[j]`` may not rank item ``cols[j]``.

    A history's items are a few dozen of 100,000: as index lists they cost bytes where a dense
    (n, n_items) boolean mask costs n x n_items bytes to fill and to read.
    """

    rows: np.ndarray
    cols: np.ndarray
    shape: tuple

    def dense(self):
        """The same mask as a boolean (n, n_items) array."""
        mask = np.zeros(self.shape, dtype=bool)
        mask[self.rows, self.cols] = True
        return mask


@dataclass
class ScoredChunk:
    """One chunk of histories with their scores and what may not be ranked."""

    key: object  # what the chunk source named it: a slice of the input, or the customers it holds
    histories: list
    scores: np.ndarray  # (n, n_items) float, as the scorer returned them (nothing set to -inf)
    mask: object  # a boolean (n, n_items) array or a SparseMask: True / listed where an item may not be ranked

    @property
    def hidden(self):
        """(n, n_items) bool, True where an item may not be ranked or shown (built once if the mask is sparse)."""
        if isinstance(self.mask, SparseMask):
            self.mask = self.mask.dense()
        return self.mask

    def masked(self):
        """The scores with every hidden item at -inf (a new array)."""
        if isinstance(self.mask, SparseMask):
            masked = self.scores.copy()
            masked[self.mask.rows, self.mask.cols] = -np.inf
            return masked
        return np.where(self.mask, -np.inf, self.scores)

    def top(self, k):
        """The k best items not hidden per row, best first: (items (n, k), scores (n, k)).

        A row with fewer than k items left ends in items scored -inf. With a sparse mask and
        writeable scores, the hidden scores are set to -inf in place and restored after, so no
        (n, n_items) array is copied.
        """
        if not isinstance(self.mask, SparseMask) or not self.scores.flags.writeable:  # e.g. a broadcast row
            return top_k(self.masked(), k)
        rows, cols = self.mask.rows, self.mask.cols
        kept = self.scores[rows, cols]
        self.scores[rows, cols] = -np.inf
        try:
            return top_k(self.scores, k)
        finally:
            self.scores[rows, cols] = kept


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
    :func:`chunks_of`); ``hide(key, histories, n_items)`` returns what to leave out, a boolean
    (n, n_items) mask or a :class:`SparseMask` (default: nothing, e.g. :func:`hide_seen`).
    """
    for key, histories, context in chunks:
        scores = np.asarray(score(histories, **context))
        if not np.issubdtype(scores.dtype, np.floating):
            scores = scores.astype(np.float64)
        n, n_items = scores.shape
        none = np.zeros(0, dtype=np.int64)
        hidden = hide(key, histories, n_items) if hide else SparseMask(none, none, (n, n_items))
        yield ScoredChunk(key, histories, scores, hidden)


def hide_seen(_key, histories, n_items):
    """A ``hide`` for :func:`scored_chunks`: the items of each history (a :class:`SparseMask`)."""
    return seen_lists(histories, n_items)


def seen_lists(histories, n_items):
    """The items present in each history as a :class:`SparseMask`."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    rows = np.repeat(np.arange(len(histories)), lengths)
    cols = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if lengths.sum() else rows
    return SparseMask(rows, cols, (len(histories), n_items))


def seen_mask(histories, n_items):
    """Boolean (n, n_items) mask of items present in each history."""
    return seen_lists(histories, n_items).dense()


def top_k(scores, k):
    """Indices and values of the k best scores per row, best first (vectorised).

    Splits each row's first BLOCK x n_blocks columns into n_blocks interleaved groups (group g holds
    columns g, g + n_blocks, g + 2 n_blocks, ...), takes each group's maximum in one pass over the
    scores (element-wise maxima of contiguous slices, which NumPy vectorises), and partitions only
    the k groups with the highest maxima and the leftover columns: the k best scores lie there, since
    those k groups hold k scores at least the k-th highest maximum. So it costs about one read of the
    scores rather than a partition of every row. Equal scores may resolve to any of them.
    """
    n, n_items = scores.shape
    k = min(k, n_items)
    n_blocks = n_items // BLOCK
    if n_blocks < 4 * k:  # few groups: partitioning whole rows costs as little
        return _top_k_rows(scores, k)
    full = n_blocks * BLOCK
    groups = scores[:, :full].reshape(n, BLOCK, n_blocks)  # a view: column j * n_blocks + g is [:, j, g]
    best_groups = np.argpartition(-groups.max(axis=1), k - 1, axis=1)[:, :k]  # (n, k)
    columns = (best_groups[:, :, None] + np.arange(BLOCK) * n_blocks).reshape(n, k * BLOCK)
    columns = np.concatenate([columns, np.broadcast_to(np.arange(full, n_items), (n, n_items - full))], axis=1)
    items, values = _top_k_rows(np.take_along_axis(scores, columns, axis=1), k)
    return np.take_along_axis(columns, items, axis=1), values


def _top_k_rows(scores, k):
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
