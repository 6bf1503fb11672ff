"""Metrics with hand-computed cases (tie rule included) and the data split."""

import numpy as np
import pytest

from recommender.ml.data import leave_one_out, read_item_attributes, read_sequences
from recommender.ml.metrics import coverage, hit_rate, ndcg, summarize, target_ranks


def test_rank_counts_higher_and_ties_against_model():
    scores = np.array([[0.9, 0.5, 0.5, 0.1, 0.7]])
    removed = np.zeros((1, 5), dtype=bool)
    # target 1 (0.5): higher 0.9 and 0.7, tie with item 2 -> rank 3
    assert target_ranks(scores, np.array([1]), removed).tolist() == [3]
    removed[0, 0] = True  # history item removed from the ranking
    assert target_ranks(scores, np.array([1]), removed).tolist() == [2]


def test_constant_scores_rank_last_and_miss():
    n = 30
    scores = np.zeros((2, n))
    removed = np.zeros((2, n), dtype=bool)
    removed[1, :5] = True
    ranks = target_ranks(scores, np.array([3, 10]), removed)
    assert ranks.tolist() == [n - 1, n - 6]
    assert summarize(ranks, ks=(10,)) == {"hr@10": 0.0, "ndcg@10": 0.0}


def test_hr_ndcg_values():
    ranks = np.array([0, 1, 9, 10])
    assert hit_rate(ranks, 10).tolist() == [1, 1, 1, 0]
    expected = [1.0, 1 / np.log2(3), 1 / np.log2(11), 0.0]
    assert ndcg(ranks, 10) == pytest.approx(expected)
    assert summarize(ranks, ks=(10,))["ndcg@10"] == pytest.approx(np.mean(expected))


def test_coverage():
    assert coverage(np.array([[0, 1], [1, 2]]), 10) == pytest.approx(0.3)


def test_read_sequences_and_split(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("u1 a b c d\nu2 b e\nu3 c a b\n")
    data = read_sequences(path)
    assert data.item_ids == ["a", "b", "c", "d", "e"]
    assert [s.tolist() for s in data.sequences] == [[0, 1, 2, 3], [1, 4], [2, 0, 1]]
    split = leave_one_out(data.sequences, data.n_items)
    assert split.eval_users.tolist() == [0, 2]
    assert split.skipped_users == 1
    assert split.train[1].tolist() == [1, 4]  # short user kept for training
    assert split.val_target[0] == 2 and split.test_target[0] == 3
    assert split.test_histories()[0].tolist() == [0, 1, 2]
    assert split.val_histories()[1].tolist() == [2]


def test_read_item_attributes(tmp_path):
    path = tmp_path / "attrs.json"
    path.write_text('{"a": [7, 9], "c": [9]}')
    attrs = read_item_attributes(path, ["a", "b", "c"])
    assert [a.tolist() for a in attrs] == [[0, 1], [], [1]]
