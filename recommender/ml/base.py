"""Shared estimator plumbing: parameters, histories, top-K, persistence.

Every model follows scikit-learn conventions: hyper-parameters are stored
verbatim by ``__init__``; ``fit`` learns attributes ending in ``_`` and
returns ``self``. A *history* is a sequence of dense item indices
(0..n_items-1) in time order.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .ranking import CHUNK, chunks_of, scored_chunks, seen_lists, seen_mask


def csr_to_state(prefix, matrix):
    """A sparse matrix as named arrays for ``state.npz`` (``<prefix>_data``, ``_indices``, ``_indptr``)."""
    matrix = matrix.tocsr()
    return {f"{prefix}_data": matrix.data, f"{prefix}_indices": matrix.indices, f"{prefix}_indptr": matrix.indptr}


def csr_from_state(prefix, arrays, shape):
    """The inverse of :func:`csr_to_state`."""
    parts = (arrays[f"{prefix}_data"], arrays[f"{prefix}_indices"], arrays[f"{prefix}_indptr"])
    return sp.csr_matrix(parts, shape=shape)


def catalogue_size(histories, n_items=None):
    """n_items when given, else one more than the largest item index in the histories."""
    if n_items is not None:
        return int(n_items)
    return int(max(int(np.max(h)) for h in histories if len(h)) + 1)


def histories_to_csr(histories, n_items, weights=None):
    """Binary (or weighted) user x item CSR matrix from item-index histories."""
    lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
    cols = (
        np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else np.zeros(0, np.int64)
    )
    rows = np.repeat(np.arange(len(histories)), lengths)
    vals = np.ones(len(cols), np.float32) if weights is None else np.asarray(weights, np.float32)
    mat = sp.csr_matrix((vals, (rows, cols)), shape=(len(histories), n_items), dtype=np.float32)
    if weights is None:
        mat.data[:] = 1.0  # duplicates were summed; keep the matrix binary
    return mat


class BaseRecommender:
    """Common behaviour: params, recommend(), save()/load()."""

    def get_params(self, deep=True):
        """Constructor parameters as a dict (scikit-learn convention)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params):
        """Set constructor parameters; returns self."""
        valid = self.get_params()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def _check_fitted(self):
        if not hasattr(self, "n_items_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted yet")

    def score(self, histories, **context):
        """Scores (n, n_items) for a chunk of histories; higher is better."""
        raise NotImplementedError

    def predict_proba(self, histories, **context):
        """A distribution over the next item for each history: (n, n_items), rows summing to 1.

        Default: the scores clipped at zero and normalised, mixed with 1% of the uniform
        distribution so that no item is impossible. Only a model trained with a softmax
        likelihood (the deep model overrides this) gives calibrated probabilities.
        """
        scores = np.clip(np.asarray(self.score(histories, **context), dtype=np.float64), 0, None)
        n_items = scores.shape[1]
        totals = scores.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            proba = np.where(totals > 0, scores / totals, 1.0 / n_items)
        return (0.99 * proba + 0.01 / n_items).astype(np.float32)

    def recommend(self, histories, k=10, exclude_seen=True, restrict_to=None, **context):
        """Top-k items per history: (item_idx (n, k), scores (n, k)).

        Users are processed in chunks of CHUNK; ``restrict_to`` is an optional
        array of allowed item indices (e.g. a promotion's eligible items).
        ``context`` (event_types, timestamps) is passed on to ``score``.
        """
        self._check_fitted()
        outside = np.zeros(self.n_items_, dtype=bool)
        if restrict_to is not None:
            outside[:] = True
            outside[np.asarray(restrict_to, dtype=np.int64)] = False
            k = min(k, int((~outside).sum()))

        def hide(_rows, chunk, n_items):
            if restrict_to is None:  # index lists: no (chunk, n_items) mask to fill and read
                return seen_lists(chunk if exclude_seen else [()] * len(chunk), n_items)
            return (seen_mask(chunk, n_items) if exclude_seen else np.zeros((len(chunk), n_items), bool)) | outside

        ranked = [chunk.top(k) for chunk in scored_chunks(self.score, chunks_of(histories, context, CHUNK), hide)]
        if not ranked:
            return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
        return np.concatenate([items for items, _ in ranked]), np.concatenate([scores for _, scores in ranked])

    # --- persistence -------------------------------------------------------
    def _state(self):
        """Learned arrays to persist (name -> ndarray); subclasses extend."""
        return {}

    def _set_state(self, arrays):
        for name, value in arrays.items():
            setattr(self, name, value)

    def save(self, directory):
        """Write params (config.json) and learned arrays (state.npz) to a directory."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        config = {
            "class": type(self).__name__,
            "params": self.get_params(),
            "n_items": int(self.n_items_),
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2, default=_json_default))
        np.savez(directory / "state.npz", **self._state())
        return directory

    @classmethod
    def load(cls, directory):
        """Rebuild a fitted model saved with ``save``."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        model = cls(**config["params"])
        model.n_items_ = config["n_items"]
        with np.load(directory / "state.npz", allow_pickle=False) as data:
            model._set_state({name: data[name] for name in data.files})
        model._after_load(directory)
        return model

    def _after_load(self, directory):
        """Hook for models needing more than the npz (e.g. Keras weights)."""


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot serialise {type(value).__name__}")
