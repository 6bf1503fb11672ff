"""Ragged: many variable-length arrays in one flat array plus offsets (the CSR layout), for per-customer series.

A million customers' histories as a Python list of NumPy arrays cost a million array objects (about 100
bytes of header each, plus the list) and scatter the values over the heap; as one ``values`` array and
``offsets`` (``values[offsets[i]:offsets[i + 1]]`` is row ``i``) they cost the values and one int64 per row,
and whole-data passes (lengths, per-row starts, a transform of every value) are single NumPy operations.

It reads like the list it replaces: ``len(r)``, ``r[i]`` (a view of row ``i``), ``r[a:b]`` and ``r[[i, j]]``
(a Ragged of those rows), iteration over the rows. Code that indexes ``histories[u]`` works unchanged.
"""

from __future__ import annotations

import numpy as np


class Ragged:
    """Rows of one dtype stored flat: ``values`` (all rows back to back) and ``offsets`` (n_rows + 1)."""

    __slots__ = ("values", "offsets")

    def __init__(self, values, offsets):
        values, offsets = np.asarray(values), np.asarray(offsets, dtype=np.int64)
        if offsets.ndim != 1 or not len(offsets) or offsets[0] != 0 or offsets[-1] != len(values):
            raise ValueError("offsets must start at 0 and end at len(values)")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("offsets must not decrease")
        self.values, self.offsets = values, offsets

    @classmethod
    def from_lists(cls, rows, dtype=None):
        """A Ragged of the given sequences (lists or arrays), in their order."""
        rows = [np.asarray(row, dtype=dtype) for row in rows]
        lengths = np.fromiter((len(row) for row in rows), dtype=np.int64, count=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        values = np.concatenate(rows) if rows else np.zeros(0, dtype=dtype or np.int64)
        return cls(values, offsets)

    @classmethod
    def of(cls, rows, dtype=None):
        """``rows`` itself when it is a Ragged, else :meth:`from_lists` of it (what a fit accepts either way)."""
        return rows if isinstance(rows, cls) else cls.from_lists(rows, dtype)

    @property
    def lengths(self):
        """(n_rows,) int64: the length of each row."""
        return np.diff(self.offsets)

    def row_ids(self):
        """(len(values),) int64: the row each value belongs to."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.lengths)

    def with_values(self, values):
        """A Ragged of the same rows over other values (one per value of this one)."""
        if len(values) != len(self.values):
            raise ValueError(f"{len(values)} values for {len(self.values)} positions")
        return Ragged(values, self.offsets)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            n = len(self)
            index = int(key) + n if key < 0 else int(key)
            if not 0 <= index < n:
                raise IndexError(f"row {key} of {n}")
            return self.values[self.offsets[index] : self.offsets[index + 1]]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                stop = max(stop, start)
                offsets = self.offsets[start : stop + 1]
                return Ragged(self.values[offsets[0] : offsets[-1]], offsets - offsets[0])
            key = np.arange(start, stop, step)
        return self.take(key)

    def take(self, rows):
        """A Ragged of the given rows (indices or a boolean mask), in that order; the values are copied."""
        rows = np.asarray(rows)
        rows = np.flatnonzero(rows) if rows.dtype == bool else rows.astype(np.int64).reshape(-1)
        starts, lengths = self.offsets[rows], self.lengths[rows]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        within = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths)
        return Ragged(self.values[np.repeat(starts, lengths) + within], offsets)

    def __iter__(self):
        values, offsets = self.values, self.offsets
        for row in range(len(self)):
            yield values[offsets[row] : offsets[row + 1]]

    def __repr__(self):
        return f"Ragged({len(self)} rows, {len(self.values)} values of {self.values.dtype})"
