"""The response features' distinct pairs (recommender/ml/response/features.py) from one int64 key per pair:
the same arrays, in the same order, as np.unique along an axis, hence the same features."""

import numpy as np
import pytest

from recommender.ml.response import features
from recommender.ml.response.features import CutoffFeatures, Purchases, unique_pairs


def unique_rows(first, second):
    """What the features computed before (main at 1fe1a23): np.unique of the stacked pairs along axis 0."""
    pairs = np.unique(np.stack([first, second], axis=1), axis=0)
    return pairs[:, 0].astype(first.dtype), pairs[:, 1].astype(second.dtype)


@pytest.mark.parametrize("seed", range(6))
def test_unique_pairs_are_np_uniques_rows_in_its_order(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    first = rng.integers(0, int(rng.choice([1, 5, 1000, 10**9])), n)
    cases = [
        rng.integers(-50, 50, n),  # integers, negative too
        np.floor(rng.uniform(19000, 20500, n)),  # whole days since the epoch, as floats
        np.floor(rng.uniform(-3, 3, n)),  # around zero
        rng.uniform(0, 10, n),  # fractions: the fallback
        np.where(rng.random(n) < 0.01, np.inf, np.floor(rng.uniform(0, 9, n))),  # not finite: the fallback
    ]
    for second in cases:
        for a, b in ((first, second), in_order(first, second)):  # unordered (a sort), in order (one pass)
            got, want = unique_pairs(a, b), unique_rows(a, b)
            for g, w in zip(got, want):
                assert g.dtype == w.dtype
                np.testing.assert_array_equal(g, w)


def in_order(first, second):
    """The pairs sorted by first then second, as a log sorted by customer and day gives them."""
    order = np.lexsort((second, first))
    return first[order], second[order]


def test_the_features_are_those_of_np_unique_along_an_axis(monkeypatch):
    # given a random purchase log, categories and an item set
    rng = np.random.default_rng(15)
    n = 20_000
    purchases = Purchases.of(
        rng.integers(0, 900, n), rng.integers(0, 300, n), rng.uniform(19000, 19800, n), rng.uniform(1, 20, n)
    )
    groups = rng.integers(-1, 12, 300)
    item_set = rng.random(300) < 0.2
    customers = np.arange(900)

    def frame(purchases):
        maker = CutoffFeatures(purchases, cutoff=19700.5, item_group=groups)
        return maker.features(item_set, customers)

    # when computed with the pairs as now, on the log as it came and sorted by customer and day as production
    # loads it, and with np.unique along the axis
    now = frame(purchases)
    ordered = frame(sorted_log(purchases))
    monkeypatch.setattr(features, "unique_pairs", unique_rows)
    before = frame(purchases)
    # then every column is equal (bit for bit but for sums taken in another order)
    assert list(now.columns) == list(before.columns) == list(ordered.columns)
    for column in now.columns:
        np.testing.assert_array_equal(now[column].to_numpy(), before[column].to_numpy(), err_msg=column)
        np.testing.assert_allclose(ordered[column].to_numpy(), before[column].to_numpy(), rtol=1e-12, err_msg=column)


def sorted_log(p):
    order = np.lexsort((p.day, p.customer))
    return Purchases.of(p.customer[order], p.item[order], p.day[order], p.value[order])


def test_a_sorted_log_takes_its_pairs_in_one_pass(monkeypatch):
    # given a log in customer then day order, and np.unique watched
    rng = np.random.default_rng(4)
    p = sorted_log(Purchases.of(rng.integers(0, 500, 8000), rng.integers(0, 50, 8000), rng.uniform(19000, 19800, 8000)))
    calls = []
    real = np.unique
    monkeypatch.setattr(features.np, "unique", lambda *a, **k: calls.append(len(a[0])) or real(*a, **k))
    # when the features of an item set are computed
    CutoffFeatures(p, cutoff=19700.5).features(rng.random(50) < 0.3, np.arange(500))
    # then no purchase-day pair was sorted: np.unique only met the (customer, item) pairs of the set's items
    past_rows = int(((p.day >= 19700.5 - features.HISTORY_DAYS) & (p.day < 19700.5)).sum())
    assert calls and max(calls) < past_rows / 2
