"""The one score -> hide -> top-K loop: the grouped top-K and sparse masks give what a full sort gives."""

import numpy as np
import pytest

from recommender.ml.ranking import SparseMask, scored_chunks, seen_lists, seen_mask, top_k


def full_sort_top(scores, k):
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1)


@pytest.mark.parametrize("n_items", [7, 100, 5003, 20_000])
def test_it_finds_the_same_best_scores_as_a_full_sort(n_items):
    # given: random scores, some rows with few finite scores left
    rng = np.random.default_rng(n_items)
    scores = rng.standard_normal((40, n_items)).astype(np.float32)
    scores[0, : n_items - 3] = -np.inf
    scores[1, ::2] = -np.inf
    # when
    items, values = top_k(scores, 20)
    # then: the k best values, best first, and the items really hold them
    k = min(20, n_items)
    assert items.shape == (40, k)
    assert np.array_equal(values, full_sort_top(scores, k))
    assert np.array_equal(np.take_along_axis(scores, items, axis=1), values)
    assert all(len(set(row)) == k for row in items)


def test_it_never_ranks_a_hidden_item_and_leaves_the_scores_as_they_were():
    # given: 3 histories over 10,000 items; the best-scored items are the ones bought
    rng = np.random.default_rng(0)
    scores = rng.random((3, 10_000))
    histories = [np.array([5, 9_000]), np.array([], dtype=np.int64), np.arange(0, 10_000, 2)]
    for row, history in enumerate(histories):
        scores[row, history] += 10
    before = scores.copy()
    # when
    (chunk,) = scored_chunks(lambda h: scores, [(slice(0, 3), histories, {})], lambda _k, h, n: seen_lists(h, n))
    items, values = chunk.top(5)
    # then
    assert not np.isin(items[0], histories[0]).any() and not np.isin(items[2], histories[2]).any()
    assert np.array_equal(values[1], np.sort(before[1])[::-1][:5])
    assert np.array_equal(chunk.scores, before)  # restored after the -inf
    assert np.array_equal(chunk.hidden, seen_mask(histories, 10_000))  # the dense view of the same mask


def test_a_sparse_mask_and_a_dense_one_rank_the_same():
    # given
    rng = np.random.default_rng(1)
    scores = rng.random((50, 3_000))
    rows, cols = rng.integers(0, 50, 2_000), rng.integers(0, 3_000, 2_000)
    sparse = SparseMask(rows, cols, scores.shape)
    # when
    (by_lists,) = scored_chunks(lambda h: scores.copy(), [(0, [None] * 50, {})], lambda *_: sparse)
    (by_mask,) = scored_chunks(lambda h: scores.copy(), [(0, [None] * 50, {})], lambda *_: sparse.dense())
    # then
    assert np.array_equal(by_lists.top(10)[1], by_mask.top(10)[1])
