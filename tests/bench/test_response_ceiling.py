"""bench/response_ceiling.py's columns on a planted log: the later weeks, the window's trips, the fixed rates."""

import sys

import numpy as np

from recommender.ml.response.features import Purchases
from recommender.ml.response.training import Shop
from tests.conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from response_ceiling import bootstrap, later_columns, own_truth_auc, stationary_rates  # noqa: E402

CUTOFF, DAYS = 100.0, 14


def shop_of(rows, n_customers=3, n_items=2):
    customer, item, day = (np.array(column) for column in zip(*rows))
    return Shop(Purchases.of(customer, item, day, n_customers=n_customers, n_items=n_items))


def test_later_columns_count_distinct_days_after_the_window_and_inside_it():
    sets = {"a": np.array([True, False]), "b": np.array([False, True])}
    shop = shop_of(
        [
            (0, 0, 99.5),  # before the cut-off: in no column
            (0, 0, 100.2),  # in the label window
            (0, 1, 100.7),  # the same day, another set: one shopping day
            (0, 0, 114.0),  # the first later day
            (0, 0, 114.9),  # the same later day again
            (0, 1, 155.9),  # the last later day (114 + 42 excluded)
            (0, 0, 156.0),  # past the later weeks
            (1, 1, 120.0),
        ]
    )
    customers = np.array([0, 1, 2])
    columns = later_columns(shop, cutoff=CUTOFF, days=DAYS, later_days=42, item_sets=sets, customers=customers)
    # rows: set a for customers 0, 1, 2, then set b for them
    assert columns["later_set_days"].tolist() == [1, 0, 0, 1, 1, 0]
    assert columns["later_all_days"].tolist() == [2, 1, 0, 2, 1, 0]
    assert columns["window_all_days"].tolist() == [1, 0, 0, 1, 0, 0]


def test_stationary_rates_are_the_share_of_windows_with_a_purchase_from_the_first_one():
    sets = {"a": np.array([True, False])}
    # windows aligned with the cut-off: [72, 86), [86, 100), [100, 114), [114, 128); the data ends on day 127
    shop = shop_of(
        [
            (0, 0, 72.0),
            (0, 0, 101.0),
            (0, 0, 102.0),  # the same window again
            (0, 1, 127.0),  # another set, the last day
            (1, 1, 90.0),  # customer 1 starts in the second window
            (1, 0, 120.0),
        ],
        n_customers=2,
    )
    rates, windows = stationary_rates(shop, cutoff=CUTOFF, days=DAYS, item_sets=sets, customers=np.array([0, 1]))
    assert windows == 4
    assert rates.tolist() == [2 / 4, 1 / 3]
    every_other, counted = stationary_rates(
        shop, cutoff=CUTOFF, days=DAYS, item_sets=sets, customers=np.array([0, 1]), every=2
    )
    assert counted == 2  # windows 0 and 2: [72, 86) and [100, 114)
    assert every_other.tolist() == [2 / 2, 0 / 1]


def test_own_truth_auc_is_one_half_for_equal_rates_and_higher_for_spread_ones():
    assert abs(own_truth_auc(np.full(4000, 0.3), draws=20) - 0.5) < 1e-9
    spread = np.repeat([0.05, 0.95], 2000)
    assert own_truth_auc(spread, draws=20) > 0.85


def test_bootstrap_interval_holds_the_auc_and_draws_households_whole():
    rng = np.random.default_rng(1)
    households = np.tile(np.arange(300), 2)
    names = np.repeat(np.array(["a", "b"], dtype=object), 300)
    p = rng.random(600)
    y = (rng.random(600) < p).astype(int)
    interval = bootstrap(y, p, names, households, resamples=50)
    from sklearn.metrics import roc_auc_score

    low, high = interval["pooled_auc_95"]
    assert low < roc_auc_score(y, p) < high
    assert high - low < 0.2
