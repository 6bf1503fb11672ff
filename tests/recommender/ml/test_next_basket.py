"""Orders, the next-basket split and metrics, and the basket baselines, on tiny hand-made data."""

import numpy as np
import pytest

from recommender.ml import load, make_model
from recommender.ml.baskets import baskets_of, order_numbers
from recommender.ml.next_basket import (
    DAY,
    basket_metrics,
    default_cutoffs,
    evaluate_next_basket,
    explore_metrics,
    next_basket_split,
)
from recommender.ml.tifuknn import TIFUKNNRecommender, group_weights
from tests.recommender.ml.conftest import group_shoppers


def test_purchases_at_the_same_moment_form_one_order_unless_named():
    # given five events: two at t=10 without an order id, one named order at t=10 and t=20, one at t=30
    stamps = [10, 10, 10, 20, 30]
    ids = [None, "", "A", "A", None]
    # then the unnamed ones group by time, the named ones by id
    assert order_numbers(stamps, ids).tolist() == [0, 0, 1, 1, 2]
    assert order_numbers(stamps).tolist() == [0, 0, 0, 1, 2]
    assert order_numbers(None, [None, None]).tolist() == [0, 1]


def test_baskets_of_holds_the_distinct_items_of_each_order_oldest_first():
    baskets, times = baskets_of([3, 1, 3, 2], orders=[0, 0, 0, 1], timestamps=[5, 5, 6, 9])
    assert [b.tolist() for b in baskets] == [[1, 3], [2]]
    assert times.tolist() == [5.0, 9.0]


def _customers():
    # customer 0: orders on days 1, 2 and 10 (after the cut-off at day 5: items 1 and 3)
    # customer 1: one order before the cut-off: not evaluated
    # customer 2: two orders before, next one 40 days after the cut-off: not evaluated
    day = lambda d: d * DAY  # noqa: E731
    histories = [np.array([0, 1, 1, 2, 1, 3, 1]), np.array([0, 4]), np.array([0, 2, 4])]
    stamps = [
        np.array([day(1), day(1), day(2), day(2), day(10), day(10), day(12)]),
        np.array([day(1), day(7)]),
        np.array([day(1), day(2), day(45)]),
    ]
    orders = [order_numbers(s) for s in stamps]
    return histories, stamps, orders


def test_the_split_keeps_customers_with_two_orders_before_and_one_within_the_horizon():
    histories, stamps, orders = _customers()
    split = next_basket_split(histories, stamps, orders, 5 * DAY, n_items=6)
    assert split.users.tolist() == [0]
    assert [t.tolist() for t in split.targets] == [[1, 3]]  # the first order after, not the one on day 12
    assert split.train[0].tolist() == [0, 1, 1, 2]
    assert split.rankable.tolist() == [True, True, True, False, False, False]


def test_default_cutoffs_are_midnight_of_the_last_day_less_28_days_and_28_more():
    test, validation = default_cutoffs([np.array([100 * DAY + 3600.0]), np.array([5.0])])
    assert (test, validation) == (72 * DAY, 44 * DAY)


def test_basket_metrics_on_a_hand_computed_case():
    # given a customer who bought 1 and 2 before, whose next basket is {1, 5}, and a list [2, 1, 7, 5]
    top = np.array([[2, 1, 7, 5]])
    result = basket_metrics(top, [np.array([1, 5])], [np.array([1, 2])], ks=(2, 4))
    # then at 2: one hit of two at rank 2
    assert result["recall@2"] == pytest.approx(0.5)
    assert result["ndcg@2"] == pytest.approx((1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert result["phr@2"] == 1.0
    assert result["recall_rep@2"] == 1.0 and result["recall_expl@2"] == 0.0
    assert result["repeat_share@2"] == 1.0
    # and at 4: both hits, at ranks 2 and 4; half the list is repeat items
    assert result["recall@4"] == 1.0
    assert result["ndcg@4"] == pytest.approx((1 / np.log2(3) + 1 / np.log2(5)) / (1 + 1 / np.log2(3)))
    assert result["recall_expl@4"] == 1.0 and result["repeat_share@4"] == 0.5
    assert (result["n"], result["n_rep"], result["n_expl"]) == (1, 1, 1)


def test_repeat_and_explore_recall_average_over_customers_who_have_such_items():
    # customer A: target {1} (bought before), hit; customer B: target {8} (new), missed
    top = np.array([[1, 2], [3, 4]])
    result = basket_metrics(top, [np.array([1]), np.array([8])], [np.array([1]), np.array([3])], ks=(2,))
    assert result["recall@2"] == 0.5 and result["phr@2"] == 0.5
    assert result["recall_rep@2"] == 1.0  # over A only
    assert result["recall_expl@2"] == 0.0  # over B only
    assert result["repeat_share@2"] == pytest.approx((0.5 + 0.5) / 2)


def test_explore_metrics_count_only_new_target_items_and_customers_having_them():
    top = np.array([[5, 6], [7, 8]])
    targets = [np.array([1, 6]), np.array([1])]  # A: 6 is new; B: nothing new
    result = explore_metrics(top, targets, [np.array([1]), np.array([1])], k=2)
    assert result == {"recall@2": 1.0, "ndcg@2": pytest.approx(1 / np.log2(3)), "n": 1}


def test_group_weights_follow_the_papers_equations():
    # given 5 orders in groups of 2 from the newest: groups {b1}, {b2, b3}, {b4, b5}
    rb, rg = 0.5, 0.25
    weights = group_weights(5, 2, rb, rg)
    expected = np.array([rg**2 * 1, rg * rb / 2, rg / 2, rb / 2, 1 / 2]) / 3
    np.testing.assert_allclose(weights, expected)


def test_tifuknn_mixes_personal_frequencies_with_the_nearest_customers():
    # given three customers: two alike (items 0, 1 each order) and one apart (item 2)
    histories = [np.array([0, 1, 0, 1]), np.array([0, 1, 0, 1, 3]), np.array([2, 2])]
    orders = [np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1, 1]), np.array([0, 1])]
    model = TIFUKNNRecommender(group_size=7, within_decay=1.0, group_decay=1.0, n_neighbors=2, alpha=0.5)
    model.fit(histories, orders=orders, n_items=4)
    scores = model.score(histories[:1], orders=orders[:1])
    # then customer 0's neighbours are itself and customer 1: item 3 scores from the neighbour alone
    assert model.nearest(model._vectors(histories[:1], orders[:1], None)).tolist() == [[0, 1]]
    personal = np.array([1.0, 1.0, 0.0, 0.0])  # both orders hold 0 and 1; mean of two orders
    neighbour = (np.array([1.0, 1.0, 0, 0]) + np.array([1.0, 1.0, 0, 0.5])) / 2
    np.testing.assert_allclose(scores[0], 0.5 * personal + 0.5 * neighbour, rtol=1e-6)
    assert scores[0, 2] == 0.0  # the far customer's item is not there


def test_ptopfreq_ranks_the_customers_frequent_items_then_the_popular_ones():
    histories = [np.array([0, 1, 0, 2, 0, 1]), np.array([3, 3, 3])]
    orders = [np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 2])]
    model = make_model("ptop").fit(histories, orders=orders, n_items=5)
    items, _ = model.recommend(histories[:1], k=4, exclude_seen=False, orders=orders[:1])
    assert items.tolist() == [[0, 1, 2, 3]]  # 0 in three orders, 1 in two, 2 in one, then 3 (popular)


def test_gtopfreq_counts_orders_in_the_last_weeks_only():
    week = 7 * DAY
    histories = [np.array([0, 1]), np.array([1, 2])]
    stamps = [np.array([0.0, 10 * week]), np.array([10 * week - DAY, 10 * week])]
    model = make_model("gtop", weeks=1).fit(histories, timestamps=stamps, n_items=3)
    assert model.popularity_.tolist() == [0.0, 2.0, 1.0]


@pytest.mark.parametrize("name", ["gtop", "ptop", "tifuknn"])
def test_basket_models_round_trip_and_evaluate(name, tmp_path):
    histories, stamps, orders = _customers()
    split = next_basket_split(histories, stamps, orders, 5 * DAY, n_items=6)
    model = make_model(name).fit(split.train, n_items=6, **split.train_context)
    again = load(model.save(tmp_path / name))
    context = split.eval_context()
    np.testing.assert_array_equal(
        model.score(split.eval_histories(), **context), again.score(split.eval_histories(), **context)
    )
    result = evaluate_next_basket(model, split)
    # item 3 was never bought before the cut-off: at most half of customer 0's target can be hit
    assert 0 < result["recall@10"] <= 0.5
    assert result["explore"] == {"recall@10": 0.0, "ndcg@10": 0.0, "n": 1}  # the new item 3 is a miss


def test_each_kinds_ranking_is_chosen_at_v_by_its_own_recall():
    from recommender.ml.next_basket import choose_rankings

    # given three groups of customers, each buying 3 of its group's 30 items a week: only the neighbours
    # tell which new items a customer will buy next (every item is about as popular as any other)
    histories, stamps, orders = group_shoppers(weeks=8, seed=0)
    validation = next_basket_split(histories, stamps, orders, 1.7e9 + 7 * 7 * DAY - 3600, n_items=90)
    options = {"basket_epochs": 2, "n_negatives": 32, "examples_per_batch": 16, "seed": 0, "verbose": False}
    logged = []
    # when the deep model's rankings of each kind are chosen at that split
    params, report, model = choose_rankings("deep", options, validation, log=logged.append)
    # then new items were measured on the explore-only recall@10, and the better ranking, TIFU-KNN's
    # neighbours here, was chosen
    explore = report["explore_rank"]
    assert explore["metric"] == "explore-only recall@10" and set(explore["measured"]) == {"model", "tifuknn"}
    assert explore["measured"]["tifuknn"] > explore["measured"]["model"] and explore["chosen"] == "tifuknn"
    # buy-again items on recall_rep@10, the better one (the first of equals) chosen
    repeat = report["repeat_rank"]
    assert repeat["metric"] == "recall_rep@10"
    assert repeat["chosen"] == max(["model", "tifuknn"], key=lambda value: repeat["measured"][value])
    # and the parameters and the fitted model are set to both choices
    assert params == {**options, "explore_rank": "tifuknn", "repeat_rank": repeat["chosen"]}
    assert (model.explore_rank, model.repeat_rank) == ("tifuknn", repeat["chosen"])
    assert any("validation explore-only recall@10" in line for line in logged)
    # and a model without such a choice is left as it is, nothing fitted
    assert choose_rankings("ptop", {}, validation) == ({}, {}, None)
