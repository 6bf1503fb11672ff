"""Paired bootstrap intervals over customers: is model A better than model B on the same customers?"""

from __future__ import annotations

import numpy as np


def paired_bootstrap(a, b, *, n_resamples=2000, level=0.95, seed=0):
    """{"diff", "low", "high"}: the mean of a - b over paired per-customer values, and the percentile
    interval of that mean over ``n_resamples`` resamples of the customers (with replacement).

    ``a`` and ``b`` hold one value per customer, the same customers in the same order (the per-customer
    recall of two models, say). ValueError when their lengths differ or they are empty.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need the same customers: got shapes {a.shape} and {b.shape}")
    if not len(a):
        raise ValueError("paired bootstrap of no customers")
    diff = a - b
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 256):  # 256 resamples at a time bound the memory
        count = min(256, n_resamples - start)
        means[start : start + count] = diff[rng.integers(0, len(diff), size=(count, len(diff)))].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {"diff": float(diff.mean()), "low": float(low), "high": float(high)}
