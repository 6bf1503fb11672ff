"""The response features' distinct pairs (recommender/ml/response/features.py) from one int64 key per pair:
the same arrays, in the same order, as np.unique along an axis, hence the same features."""

import numpy as np
import pytest

from recommender.ml.response import features
from recommender.ml.response.features import CutoffFeatures, Purchases, _unique_pairs


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
        got, want = _unique_pairs(first, second), unique_rows(first, second)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


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

    def frame():
        maker = CutoffFeatures(purchases, cutoff=19700.5, item_group=groups)
        return maker.features(item_set, customers)

    # when computed with the pairs as now, and with np.unique along the axis
    now = frame()
    monkeypatch.setattr(features, "_unique_pairs", unique_rows)
    before = frame()
    # then every column is equal, bit for bit
    assert list(now.columns) == list(before.columns)
    for column in now.columns:
        np.testing.assert_array_equal(now[column].to_numpy(), before[column].to_numpy(), err_msg=column)
