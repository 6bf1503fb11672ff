"""Full-catalogue ranking metrics with pessimistic tie handling."""

from __future__ import annotations

import numpy as np


def target_ranks(scores, targets, removed):
    """0-based rank of each target among the non-removed items.

    ``scores`` is (n, n_items), ``targets`` (n,), ``removed`` a boolean
    (n, n_items) mask of items excluded from the ranking (the history fed to
    the model). The target itself is never removed. Ties count against the
    model: rank = #(kept items scoring higher) + #(other kept items scoring
    equal), so a constant scorer gets rank n_kept - 1.
    """
    scores = np.asarray(scores)
    rows = np.arange(len(targets))
    target_scores = scores[rows, targets][:, None]
    kept = ~removed
    kept[rows, targets] = False  # compare the target only against the others
    not_lower = (scores > target_scores) | (scores == target_scores)
    if np.issubdtype(scores.dtype, np.floating):
        # a NaN target score is a failure: rank it last among the kept items
        not_lower |= np.isnan(target_scores)
    return np.count_nonzero(not_lower & kept, axis=1)


def hit_rate(ranks, k):
    """Per-user HR@k: 1 when rank < k."""
    return (np.asarray(ranks) < k).astype(np.float64)


def ndcg(ranks, k):
    """Per-user NDCG@k with one relevant item: 1/log2(rank+2) when rank < k."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def summarize(ranks, ks=(10, 20)):
    """Mean HR@k and NDCG@k for each k, as a dict."""
    out = {}
    for k in ks:
        out[f"hr@{k}"] = float(hit_rate(ranks, k).mean()) if len(ranks) else 0.0
        out[f"ndcg@{k}"] = float(ndcg(ranks, k).mean()) if len(ranks) else 0.0
    return out


def coverage(top_items, n_items):
    """Fraction of the catalogue appearing in at least one recommendation list."""
    return float(len(np.unique(np.asarray(top_items))) / n_items) if n_items else 0.0
