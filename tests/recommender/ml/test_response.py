"""The response model: features see nothing after the cut-off, calibration on a synthetic shop with a known
response rate, and the incremental value on hand-computed cases."""

from functools import partial

import numpy as np
import pandas as pd
import pytest

from recommender.ml.response import (
    CutoffFeatures,
    Purchases,
    Shop,
    response_labels,
    response_model_fit,
    set_window_rows,
)
from recommender.ml.response.model import ResponseModel, training_cutoffs
from recommender.ml.response.value import (
    bernoulli_sum_interval,
    incremental_profit,
    incremental_profit_interval,
    treated_probability,
)

N_ITEMS = 6
SET = np.array([True, True, False, False, False, False])  # items 0 and 1 are the promotion's


def small_log():
    # customer, item, day, value
    rows = [(0, 0, 10.2, 3.0), (0, 2, 10.2, 1.0), (0, 1, 40.5, 2.0), (1, 3, 20.0, 5.0), (1, 4, 55.0, 1.0)]
    c, i, d, v = zip(*rows)
    return Purchases.of(c, i, d, v, n_customers=3, n_items=N_ITEMS)


def with_row(purchases, customer, item, day, value=9.0):
    return Purchases.of(
        np.r_[purchases.customer, customer],
        np.r_[purchases.item, item],
        np.r_[purchases.day, day],
        np.r_[purchases.value, value],
        n_customers=purchases.n_customers,
        n_items=purchases.n_items,
    )


def features(purchases, cutoff=60.0):
    group = np.array([0, 0, 1, 1, 2, -1])
    demographics = np.array([[1.0], [np.nan], [3.0]])
    maker = CutoffFeatures(
        purchases, cutoff=cutoff, item_group=group, demographics=demographics, demographic_names=("a",)
    )
    return maker.features(SET, np.array([0, 1, 2]))


@pytest.mark.parametrize("day", [60.0, 60.5, 75.0, 400.0])
@pytest.mark.parametrize("customer, item", [(0, 0), (1, 1), (2, 3), (1, 2)])
def test_it_changes_no_feature_for_a_purchase_at_or_after_the_cutoff(customer, item, day):
    # given a shop and the features at day 60
    before = features(small_log())
    # when a purchase is planted at or after the cut-off, in or out of the set, for any customer
    after = features(with_row(small_log(), customer, item, day))
    # then no feature of any customer changes
    pd.testing.assert_frame_equal(before, after)


def test_the_same_purchase_before_the_cutoff_does_change_features():
    # the test above could fail: a purchase one day earlier is seen
    before = features(small_log())
    after = features(with_row(small_log(), 1, 1, 59.0))
    assert after.loc[1, "set_days_since"] == pytest.approx(1.0)
    assert before.loc[1, "set_days_since"] != after.loc[1, "set_days_since"]


def test_it_counts_recency_frequency_and_spend_in_the_set():
    frame = features(small_log())
    assert frame.loc[0, "set_days_since"] == pytest.approx(60 - 40)  # the latest purchase in the set: day 40
    assert frame.loc[0, "set_days_365"] == 2
    assert frame.loc[0, "set_spend_90"] == pytest.approx(5.0)
    assert frame.loc[0, "set_interval"] == pytest.approx(30.0)
    assert frame.loc[1, "set_days_365"] == 0
    assert frame.loc[0, "group_days_365"] == 0  # item 2 is in group 1, not the set's group 0
    assert np.isnan(frame.loc[1, "demo_a"])


def test_labels_read_only_the_window_after_the_cutoff():
    purchases = with_row(with_row(small_log(), 2, 1, 61.0), 1, 0, 74.5)
    labels = response_labels(purchases, cutoff=60.0, item_set=SET, customers=[0, 1, 2], days=14)
    assert labels.tolist() == [0, 0, 1]  # customer 1's purchase at 74.5 is after [60, 74)


def test_every_label_window_ends_by_the_cutoff_it_is_tested_at():
    train, calibration = training_cutoffs(200.0, days=14, windows=5)
    assert calibration + 14 <= 200.0
    assert all(c + 14 <= calibration for c in train)
    assert len(train) == 5


def synthetic_shop(n_customers=1500, days=260, seed=0):
    """Each customer buys a set item on any day with their own known rate (0 to 0.08 a day), other items
    at random. The true 14-day response probability of customer c is 1 - (1 - rate_c) ** 14."""
    rng = np.random.default_rng(seed)
    rate = rng.uniform(0.0, 0.08, n_customers)
    set_buys = rng.random((n_customers, days)) < rate[:, None]
    other_buys = rng.random((n_customers, days)) < 0.15
    c1, d1 = np.nonzero(set_buys)
    c2, d2 = np.nonzero(other_buys)
    customer = np.r_[c1, c2]
    item = np.r_[rng.integers(0, 2, len(c1)), rng.integers(2, N_ITEMS, len(c2))]
    day = np.r_[d1, d2] + 0.5
    purchases = Purchases.of(customer, item, day, np.ones(len(day)), n_customers=n_customers, n_items=N_ITEMS)
    return Shop(purchases, item_group=np.array([0, 0, 1, 1, 1, 1])), 1 - (1 - rate) ** 14


def test_it_is_calibrated_on_a_synthetic_shop_with_a_known_response_rate():
    # given a shop whose customers' response probabilities are known
    shop, truth = synthetic_shop()
    cutoff = 240.0
    # when the model learns from earlier windows only and predicts the window after the cut-off
    model, report = response_model_fit(
        shop, cutoff=cutoff, item_sets={"set": SET}, days=14, windows=6, params={"max_iter": 100}
    )
    customers = shop.buyers_before(cutoff)
    X = shop.at(cutoff).features(SET, customers)
    predicted = model.predict_proba(X)
    # then the predictions add up to the known expected responses (not just to the sampled ones)...
    assert predicted.sum() / truth[customers].sum() == pytest.approx(1.0, abs=0.08)
    # ... and, by decile of prediction, match the true probabilities of those customers
    order = np.argsort(predicted)
    for part in np.array_split(order, 5):
        assert predicted[part].mean() == pytest.approx(truth[customers][part].mean(), abs=0.05)
    # and the calibration window came after every training window
    assert max(report["train_cutoffs"]) < report["calibration_cutoff"]


def test_a_large_shop_trains_on_a_bounded_sample_of_each_window_and_stays_calibrated():
    # given a shop of 1,500 customers and a bound of 3,000 training rows over 6 windows of one set (500 a window)
    shop, truth = synthetic_shop()
    cutoff = 240.0
    fit = partial(
        response_model_fit, shop, cutoff=cutoff, item_sets={"set": SET}, days=14, windows=6, params={"max_iter": 100}
    )
    # when the model is fitted under the bound, twice, and once with no bound
    model, report = fit(train_rows=3000, calibration_rows=800)
    again, report_again = fit(train_rows=3000, calibration_rows=800)
    _whole, whole = fit()
    # then each window held 500 of its buyers and the calibration window 800: not every row
    assert report["customers_per_window"] == 500
    assert report["train_rows"] == 3000 and report["calibration_rows"] == 800
    assert whole["train_rows"] > 6 * 1000 and whole["calibration_rows"] > 1000
    # ... the same sample at every run (the same model)
    customers = shop.buyers_before(cutoff)
    X = shop.at(cutoff).features(SET, customers)
    np.testing.assert_array_equal(model.predict_proba(X), again.predict_proba(X))
    assert report_again == report
    # ... and it still predicts the known response of everyone
    assert model.predict_proba(X).sum() / truth[customers].sum() == pytest.approx(1.0, abs=0.1)


def test_a_windows_sample_is_drawn_from_its_buyers_and_differs_between_windows():
    shop, _truth = synthetic_shop(n_customers=800, days=120, seed=2)
    rows = partial(set_window_rows, shop, item_sets={"set": SET, "other": ~SET}, days=14, most_customers=100)
    _X, y, names, first = rows(cutoff=80.0)
    _X, _y, _names, second = rows(cutoff=94.0)
    # both sets for each of 100 buyers of the window
    assert len(y) == 200 and (names == "set").sum() == 100
    assert np.array_equal(first[:100], first[100:]) and len(np.unique(first)) == 100
    assert np.isin(first, shop.buyers_before(80.0)).all()
    assert not np.array_equal(np.sort(first[:100]), np.sort(second[:100]))
    # a window with no more buyers than the bound keeps them all
    _X, _y, _names, every = set_window_rows(shop, cutoff=80.0, item_sets={"set": SET}, most_customers=10**6)
    np.testing.assert_array_equal(every, shop.buyers_before(80.0))


def test_platt_calibration_and_saving(tmp_path):
    shop, _truth = synthetic_shop(n_customers=400, days=120, seed=1)
    model, _ = response_model_fit(
        shop, cutoff=110.0, item_sets={"set": SET}, windows=3, params={"calibration": "platt", "max_iter": 30}
    )
    X = shop.at(110.0).features(SET, shop.buyers_before(110.0))
    restored = ResponseModel.load(model.save(tmp_path / "response.joblib"))
    np.testing.assert_allclose(restored.predict_proba(X), model.predict_proba(X))
    assert ((model.predict_proba(X) >= 0) & (model.predict_proba(X) <= 1)).all()


def test_it_refuses_a_window_without_responders():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="responders"):
        ResponseModel().fit(X, [0, 0, 0], X, [0, 1, 0])


def test_incremental_profit_on_hand_computed_cases():
    # p0 0.2, p1 0.3, margin 10, discount 2: 0.3 x 8 - 0.2 x 10 = 2.4 - 2.0 = 0.4
    assert incremental_profit(0.2, 0.3, 10.0, 2.0) == pytest.approx(0.4)
    # no lift: the discount on what is bought anyway is the whole effect, -p x discount
    assert incremental_profit(0.5, 0.5, 10.0, 2.0) == pytest.approx(-1.0)
    # nobody buys without the offer: every redemption is incremental
    assert incremental_profit(0.0, 0.1, 6.0, 1.0) == pytest.approx(0.5)
    # a discount larger than the margin never pays
    assert incremental_profit(0.1, 0.9, 3.0, 4.0) == pytest.approx(-1.2)
    np.testing.assert_allclose(incremental_profit([0.2, 0.5], [0.3, 0.5], [10, 10], [2, 2]), [0.4, -1.0])
    assert treated_probability([0.2, 0.9], 0.5).tolist() == pytest.approx([0.3, 1.0])


def test_bernoulli_intervals_by_hand():
    # 100 customers at p = 0.5: mean 50, sd 5, 90% -> 50 -/+ 1.6449 x 5 = 41.78 .. 58.22, whole counts 41 .. 59
    assert bernoulli_sum_interval(np.full(100, 0.5)) == pytest.approx((50.0, 41.0, 59.0))
    # weights: revenue of 10 each on 4 customers at p = 0.25: mean 10, sd 10 x sqrt(0.75) = 8.660
    mean, low, high = bernoulli_sum_interval(np.full(4, 0.25), weight=np.full(4, 10.0))
    assert (mean, low, high) == pytest.approx((10.0, 10 - 1.6449 * 8.660, 10 + 1.6449 * 8.660), abs=1e-3)
    # incremental: one customer p0 0.2, p1 0.3, margin 10, discount 2: mean 0.4,
    # variance 8^2 x 0.21 + 10^2 x 0.16 = 13.44 + 16 = 29.44
    mean, low, high = incremental_profit_interval([0.2], [0.3], [10.0], [2.0])
    assert mean == pytest.approx(0.4)
    assert high - mean == pytest.approx(1.6449 * np.sqrt(29.44), abs=1e-3)


def test_a_purchase_older_than_the_history_the_features_read_changes_no_feature():
    # production loads only the last HISTORY_DAYS (and a window) of the log: a backtest on the whole log
    # must compute the same numbers, so nothing older may count
    from recommender.ml.response.features import HISTORY_DAYS

    cutoff = HISTORY_DAYS + 60.0
    base = Purchases.of([0, 1], [0, 3], [cutoff - 10, cutoff - 20], n_customers=3, n_items=N_ITEMS)
    planted = with_row(base, 0, 0, cutoff - HISTORY_DAYS - 1.0)
    pd.testing.assert_frame_equal(features(base, cutoff), features(planted, cutoff))
    inside = with_row(base, 0, 0, cutoff - HISTORY_DAYS + 1.0)
    assert not features(base, cutoff).equals(features(inside, cutoff))


def test_a_sets_level_shift_moves_its_predicted_sum_toward_its_responders():
    from recommender.ml.response.model import level_shifted, set_level_shift

    # given calibrated probabilities that add up to 20 where 30 responded
    p = np.full(200, 0.1)
    y = np.r_[np.ones(30), np.zeros(170)]
    # then with no prior the shift brings the sum to 30; with 100 pseudo-responses, to 20 x 130 / 120
    assert level_shifted(p, set_level_shift(p, y, prior=0.0)).sum() == pytest.approx(30.0, rel=1e-4)
    assert level_shifted(p, set_level_shift(p, y, prior=100.0)).sum() == pytest.approx(20 * 130 / 120, rel=1e-4)
    # a huge prior leaves the pooled map alone, and a shift never reorders customers
    assert set_level_shift(p, y, prior=1e9) == pytest.approx(0.0, abs=1e-6)
    q = np.linspace(0.01, 0.9, 50)
    assert (np.diff(level_shifted(q, -0.7)) > 0).all()


def test_the_campaign_blend_reads_counts_by_their_logarithm_and_is_calibrated_on_the_later_rows():
    from sklearn.metrics import roc_auc_score

    from recommender.ml.response.evaluation import CampaignModel

    # given counts whose logarithm sets the odds of redeeming, and a later calibration set
    rng = np.random.default_rng(4)

    def rows(n):
        counts = rng.lognormal(2.0, 1.2, n)
        X = pd.DataFrame({"set_days_365": counts, "demo_age": rng.integers(0, 5, n).astype(float)})
        y = (rng.random(n) < 1 / (1 + np.exp(-(np.log1p(counts) - 3.0)))).astype(int)
        return X, y

    (X, y), (X_cal, y_cal), (X_test, y_test) = rows(3000), rows(2000), rows(2000)
    model = CampaignModel(logistic_weight=0.5, max_iter=50, max_leaf_nodes=4).fit(X, y, X_cal, y_cal)
    # then the count is logged for the linear part (demographic ranks are not), the blend ranks, and its
    # probabilities add up to the responders of new rows
    assert model.logged_ == ["set_days_365"]
    p = model.predict_proba(X_test)
    truth = 1 / (1 + np.exp(-(np.log1p(X_test["set_days_365"]) - 3.0)))
    assert roc_auc_score(y_test, p) > roc_auc_score(y_test, truth) - 0.02
    assert p.sum() / y_test.sum() == pytest.approx(1.0, abs=0.1)


def test_the_campaigns_backtest_trains_on_earlier_campaigns_and_scores_the_last_eight():
    from recommender.ml.response.evaluation import Campaign, Redemptions, campaigns_evaluate, campaigns_predict
    from recommender.ml.response.training import Shop

    rng = np.random.default_rng(3)
    n_customers, n_items = 300, 20
    rate = rng.uniform(0.01, 0.3, n_customers)  # a customer's daily chance of buying item 0
    rows = [
        (c, int(rng.integers(n_items)), float(d)) for c in range(n_customers) for d in range(200) if rng.random() < 0.1
    ]
    rows += [(c, 0, float(d)) for c in range(n_customers) for d in range(200) if rng.random() < rate[c]]
    customer, item, day = (np.array(column) for column in zip(*rows))
    shop = Shop(Purchases.of(customer, item, day, n_customers=n_customers, n_items=n_items))
    items = np.zeros(n_items, bool)
    items[0] = True
    found = []
    for k in range(14):
        start = 60.0 + 10 * k
        targeted = np.sort(rng.choice(n_customers, 120, replace=False))
        # the customers who buy item 0 often redeem more
        redeemers = targeted[rng.random(len(targeted)) < rate[targeted] * 2]
        found.append(Campaign(str(k), "A", start, start + 8, targeted, items, redeemers))
    redemptions = Redemptions(np.zeros(0, np.int64), np.zeros(0), np.zeros(0, object))
    test, predicted, setup = campaigns_predict(shop, campaigns=found, redemptions=redemptions)
    assert [c.id for c in test] == [str(k) for k in range(6, 14)]
    assert set(setup["train_campaigns"]).isdisjoint(setup["test_campaigns"])
    first_test = min(c.start for c in test)
    for used in [*setup["train_campaigns"], *setup["calibration_campaigns"]]:
        assert found[int(used)].end <= first_test
    report = campaigns_evaluate(shop, campaigns=found, redemptions=redemptions, data_end=170.0)
    assert [k for k, v in report["per_campaign"].items() if v["inside_data"]] == ["6", "7", "8", "9", "10"]
    inside = [predicted[k] for k in ("6", "7", "8", "9", "10")]
    assert report["pooled"]["actual"] == sum(int(y.sum()) for y, _p in inside)
    assert report["pooled"]["predicted"] == pytest.approx(sum(float(p.sum()) for _y, p in inside))
    assert report["pooled"]["auc"] > 0.7  # the planted rate is learnable from the purchases of item 0
