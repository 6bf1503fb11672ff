"""A recipient's items: the k eligible, showable columns of highest probability, best first, ties in column
order (campaigns/services/generation.py: _top_columns), the same as a stable sort of them all."""

import numpy as np
import pytest

from campaigns.services.generation import _top_columns


def sorted_whole(columns, proba, k):
    """What generation did before (main at e310bdc): a stable argsort of every eligible column."""
    return columns[np.argsort(-proba[columns], kind="stable")[:k]]


@pytest.mark.parametrize("seed", range(4))
def test_the_top_k_are_those_of_a_stable_sort_of_every_column_ties_included(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n_items = int(rng.integers(1, 6000))  # past the blocks' threshold (8 x 32 x k) and below it
        # few distinct values (many ties, at the k-th place too), or continuous ones
        proba = (rng.integers(0, 4, n_items) / 4 if rng.random() < 0.5 else rng.random(n_items)).astype(np.float32)
        columns = np.flatnonzero(rng.random(n_items) < rng.choice([0.02, 0.5, 0.99, 2.0]))  # 2: every column
        k = min(int(rng.integers(1, 9)), len(columns))
        assert np.array_equal(_top_columns(columns, proba, k), sorted_whole(columns, proba, k))


def test_ties_at_the_kth_place_go_to_the_lower_columns():
    proba = np.full(1000, 0.3, np.float32)
    proba[[0, 700]] = 0.1
    proba[[1, 999]] = 0.5
    columns = np.arange(len(proba))
    assert _top_columns(columns, proba, 3).tolist() == [1, 999, 2]
    assert _top_columns(columns[::2], proba, 2).tolist() == [2, 4]
