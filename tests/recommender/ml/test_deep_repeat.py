"""The repeat-aware deep model (deep_repeat.py), its features and the paired bootstrap, on small made-up data."""

import numpy as np
import pytest

from recommender.ml import deep_repeat_features as RF
from recommender.ml import load, make_model
from recommender.ml.bootstrap import paired_bootstrap
from recommender.ml.explain import removal_reasons
from recommender.ml.next_basket import DAY
from tests.recommender.ml.conftest import group_shoppers

N_ITEMS = 12
END = 120  # the day the data ends: the model's reference time is its midnight


def periodic_shoppers(n_customers=40, seed=0):
    """Each customer shops every day up to day END - 1. Their staple (item c % 4) is in every 7th order only;
    each of three fillers (items 4 + (c + j) % 8) is in 40% of the orders, so a filler is bought more often
    than the staple but never on a schedule. The staple was last bought ``c % 7`` + 1 days before END."""
    rng = np.random.default_rng(seed)
    histories, stamps, orders = [], [], []
    for c in range(n_customers):
        staple, fillers = c % 4, [4 + (c + j) % 8 for j in range(3)]
        last_staple = END - 1 - c % 7
        items, times, numbers = [], [], []
        for number, day in enumerate(range(END - 70, END)):
            basket = [f for f in fillers if rng.random() < 0.4]
            if (last_staple - day) % 7 == 0:
                basket.append(staple)
            if not basket:
                basket = [fillers[0]]
            items += basket
            times += [day * DAY + 3600.0] * len(basket)
            numbers += [number] * len(basket)
        histories.append(np.array(items, np.int64))
        stamps.append(np.array(times))
        orders.append(np.array(numbers, np.int64))
    return histories, stamps, orders


@pytest.fixture(scope="module")
def fitted():
    histories, stamps, orders = periodic_shoppers()
    model = make_model(
        "deep", seed=0, verbose=False, basket_epochs=25, n_cutoffs=14, cutoff_step_days=1, n_negatives=8,
        examples_per_batch=32, basket_learning_rate=2e-2,
    )  # fmt: skip
    model.fit(histories, timestamps=stamps, orders=orders, n_items=N_ITEMS)
    return model, (histories, stamps, orders)


def test_the_repeat_part_ranks_a_periodic_staple_first_when_it_is_due(fitted):
    model, (histories, stamps, orders) = fitted
    scores = model.score(histories, timestamps=stamps, orders=orders)
    due = [c for c in range(len(histories)) if c % 7 == 6]  # last bought 7 days before: due today
    fresh = [c for c in range(len(histories)) if c % 7 == 0]  # bought yesterday: not due for 6 days
    # then a due staple outranks every filler, although each filler was bought more often
    assert all(int(np.argmax(scores[c])) == c % 4 for c in due)
    # and a staple bought yesterday ranks below the customer's fillers
    assert all(int(np.argmax(scores[c])) != c % 4 for c in fresh)


def test_it_saves_loads_and_explains_faithfully(fitted, tmp_path):
    model, (histories, stamps, orders) = fitted
    again = load(model.save(tmp_path / "m"))
    args = dict(timestamps=stamps[:3], orders=orders[:3])
    np.testing.assert_allclose(again.score(histories[:3], **args), model.score(histories[:3], **args), rtol=1e-6)
    # a buy-again item is explained by its own last purchase
    position = model.explain(histories[0], [0])[0]
    assert histories[0][position] == 0
    # removal reasons: where an item is named, removing it from the history lowers the score
    new_items = np.setdiff1d(np.arange(N_ITEMS), histories[0])
    context = {"timestamps": stamps[0], "orders": orders[0]}
    positions, drops = removal_reasons(model, histories[0], new_items, context)
    for item, position, drop in zip(new_items, positions, drops):
        if position >= 0:
            keep = histories[0] != histories[0][position]
            full = model.score([histories[0]], timestamps=[stamps[0]], orders=[orders[0]])[0, item]
            less = model.score([histories[0][keep]], timestamps=[stamps[0][keep]], orders=[orders[0][keep]])[0, item]
            assert less < full and drop > 0


def test_nothing_at_or_after_the_cut_off_reaches_the_features():
    histories, stamps, orders = periodic_shoppers(n_customers=3)
    cutoff = (END - 10) * DAY
    popularity = RF.order_popularity(histories, stamps, orders, N_ITEMS, cutoff)
    before = RF.customer_features(histories[0], stamps[0], orders[0], cutoff, popularity)
    # when a purchase of a new item (11) and of the staple is planted at the cut-off and after it
    planted = [np.concatenate([h, [11, 0]]) for h in histories]
    planted_stamps = [np.concatenate([s, [cutoff, cutoff + 5 * DAY]]) for s in stamps]
    planted_orders = [np.concatenate([o, [o.max() + 1, o.max() + 2]]) for o in orders]
    popularity_after = RF.order_popularity(planted, planted_stamps, planted_orders, N_ITEMS, cutoff)
    after = RF.customer_features(planted[0], planted_stamps[0], planted_orders[0], cutoff, popularity_after)
    # then the popularity and every feature are unchanged
    np.testing.assert_array_equal(popularity, popularity_after)
    for one, other in zip(before, after):
        np.testing.assert_array_equal(one, other)
    # while the same planted purchase before the cut-off changes them
    moved = RF.customer_features(planted[0], planted_stamps[0], planted_orders[0], cutoff + 6 * DAY, popularity)
    assert 11 in moved[0] and 11 not in before[0]


def test_the_features_say_how_often_and_how_due():
    # bought on days 0, 10 and 20, another item on day 20 only; features read at day 25
    history, stamps, orders = np.array([0, 0, 0, 1]), np.array([0.0, 10, 20, 20]) * DAY, np.array([0, 1, 2, 2])
    items, feats, customer = RF.customer_features(history, stamps, orders, 25 * DAY, np.zeros((2, 3), np.float32))
    row = dict(zip(RF.ITEM_FEATURES, feats[0]))
    assert items.tolist() == [0, 1]
    assert row["log_count"] == pytest.approx(np.log1p(3)) and row["share"] == pytest.approx(1.0)
    assert row["log_days_since"] == pytest.approx(np.log1p(5)) and row["log_interval"] == pytest.approx(np.log1p(10))
    assert row["log_due"] == pytest.approx(np.log1p(0.5)) and row["in_last"] == 1.0
    assert dict(zip(RF.ITEM_FEATURES, feats[1]))["once"] == 1.0
    assert dict(zip(RF.CUSTOMER_FEATURES, customer))["log_orders"] == pytest.approx(np.log1p(3))


def test_without_orders_it_is_the_sequential_model_exactly():
    # what a sequence file (Amazon Beauty) runs: the same seed gives the same scores as deep.py's model
    from recommender.ml.deep import DeepSequentialRecommender

    histories = [np.array([0, 1, 2, 3]), np.array([1, 2, 3, 0]), np.array([2, 3, 0, 1])]
    params = dict(embed_dim=8, n_blocks=1, max_epochs=2, verbose=False, maxlen=5, seed=1)
    model = make_model("deep", **params).fit(histories, n_items=4)
    plain = DeepSequentialRecommender(**params).fit(histories, n_items=4)
    assert not model.basket_mode
    np.testing.assert_array_equal(model.score(histories), plain.score(histories))


def test_the_paired_bootstrap_on_hand_checkable_values():
    # a constant difference: every resample has the same mean
    assert paired_bootstrap([1.0, 2.0, 3.0], [0.5, 1.5, 2.5]) == {"diff": 0.5, "low": 0.5, "high": 0.5}
    # differences 0 and 1: resample means lie in [0, 1] around 0.5, and the interval is inside and wide
    result = paired_bootstrap([1.0, 0.0] * 20, [0.0, 0.0] * 20, n_resamples=4000)
    assert result["diff"] == 0.5 and 0.25 < result["low"] < 0.5 < result["high"] < 0.75
    # the same seed gives the same interval; mismatched customers are refused
    assert paired_bootstrap([1, 0, 1], [0, 0, 1], seed=3) == paired_bootstrap([1, 0, 1], [0, 0, 1], seed=3)
    with pytest.raises(ValueError, match="same customers"):
        paired_bootstrap([1, 2], [1, 2, 3])


def test_the_explore_part_reads_the_neighbours_new_items_and_reloads_with_the_same_scores(tmp_path):
    # given three groups of customers, each buying 3 of its group's 30 items a week for 6 weeks: every item
    # is about as popular as any other, so only the neighbours tell which new items a customer will buy
    histories, stamps, orders = group_shoppers(weeks=6, seed=0)
    options = {"basket_epochs": 4, "n_negatives": 32, "examples_per_batch": 16, "seed": 0, "verbose": False}
    model = make_model("deep", explore_neighbours=10, **options)
    model.fit(histories, timestamps=stamps, orders=orders, n_items=90)
    scores = model.score(histories, timestamps=stamps, orders=orders)
    # then it learns to follow them (a positive weight), and the new items of the customer's own group
    # score above the other groups' on average for almost everyone (about half without the neighbours)
    assert model.net_knn_w_ > 0
    ahead = []
    for c, history in enumerate(histories):
        new = np.setdiff1d(np.arange(90), history)
        own = new[new // 30 == c % 3]
        ahead.append(scores[c, own].mean() > scores[c, new[new // 30 != c % 3]].mean())
    assert np.mean(ahead) >= 0.9
    # and the saved model scores the same
    model.save(tmp_path / "m")
    again = load(tmp_path / "m").score(histories[:5], timestamps=stamps[:5], orders=orders[:5])
    np.testing.assert_allclose(again, scores[:5], rtol=1e-5, atol=1e-6)


def test_ranked_by_tifuknn_new_items_follow_its_neighbours_and_keep_the_models_mix(tmp_path):
    # given the three groups of the test above, a model fitted twice: new items by its explore part, and by
    # TIFU-KNN (the ranking that wins the explore-only task where the explore part does not)
    histories, stamps, orders = group_shoppers(weeks=6, seed=1)
    options = {"basket_epochs": 2, "n_negatives": 32, "examples_per_batch": 16, "seed": 0, "verbose": False}
    own = make_model("deep", **options).fit(histories, timestamps=stamps, orders=orders, n_items=90)
    ranked = make_model("deep", explore_rank="tifuknn", **options).fit(
        histories, timestamps=stamps, orders=orders, n_items=90
    )
    mine = own.score(histories, timestamps=stamps, orders=orders)
    theirs = ranked.score(histories, timestamps=stamps, orders=orders)
    neighbourhood = make_model("tifuknn", group_size=3, within_decay=0.9, group_decay=0.9, n_neighbors=100)
    neighbourhood.fit(histories, timestamps=stamps, orders=orders, n_items=90)
    tifu = neighbourhood.score(histories, timestamps=stamps, orders=orders)
    for c, history in enumerate(histories):
        bought = np.zeros(90, bool)
        bought[history] = True
        new = np.flatnonzero(~bought)
        # then the buy-again logits are the model's own, and each row's logits are the same values permuted
        np.testing.assert_allclose(theirs[c, bought], mine[c, bought], rtol=1e-6)
        np.testing.assert_allclose(np.sort(theirs[c]), np.sort(mine[c]), rtol=1e-6)
        # so the number of new items in the top 10 is the model's
        assert (~bought[np.argsort(-theirs[c])[:10]]).sum() == (~bought[np.argsort(-mine[c])[:10]]).sum()
        # and the new items are in TIFU-KNN's order where it has a value for them
        valued = new[tifu[c, new] > 0]
        order = valued[np.lexsort((-theirs[c, valued], -tifu[c, valued]))]  # TIFU-KNN's value first
        assert np.all(np.diff(theirs[c, order]) <= 0)
        assert theirs[c, valued].min() >= theirs[c, new[tifu[c, new] <= 0]].max(initial=-np.inf)
    # and the explore ranking survives a save and a load
    ranked.save(tmp_path / "m")
    again = load(tmp_path / "m").score(histories[:5], timestamps=stamps[:5], orders=orders[:5])
    np.testing.assert_allclose(again, theirs[:5], rtol=1e-5, atol=1e-6)


def test_ranked_by_tifuknn_bought_items_follow_its_score_and_keep_the_models_values():
    # given the model fitted on the three groups with its buy-again items ranked by TIFU-KNN's score
    histories, stamps, orders = group_shoppers(weeks=6, seed=1)
    options = {"basket_epochs": 2, "n_negatives": 32, "examples_per_batch": 16, "seed": 0, "verbose": False}
    own = make_model("deep", **options).fit(histories, timestamps=stamps, orders=orders, n_items=90)
    ranked = make_model("deep", repeat_rank="tifuknn", **options).fit(
        histories, timestamps=stamps, orders=orders, n_items=90
    )
    mine = own.score(histories, timestamps=stamps, orders=orders)
    theirs = ranked.score(histories, timestamps=stamps, orders=orders)
    tifu = make_model("tifuknn", group_size=3, within_decay=0.9, group_decay=0.9, n_neighbors=100, alpha=0.7)
    tifu = tifu.fit(histories, timestamps=stamps, orders=orders, n_items=90).score(
        histories, timestamps=stamps, orders=orders
    )
    for c, history in enumerate(histories):
        bought = np.unique(history)
        new = np.setdiff1d(np.arange(90), bought)
        # then new items keep the model's logits, and the bought ones take the model's values permuted
        np.testing.assert_allclose(theirs[c, new], mine[c, new], rtol=1e-6)
        np.testing.assert_allclose(np.sort(theirs[c, bought]), np.sort(mine[c, bought]), rtol=1e-6)
        # in TIFU-KNN's order
        order = bought[np.lexsort((-theirs[c, bought], -tifu[c, bought]))]
        assert np.all(np.diff(theirs[c, order]) <= 0)


def test_an_unknown_ranking_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="explore_rank must be one of model, tifuknn"):
        make_model("deep", explore_rank="popular")
    with pytest.raises(ValueError, match="repeat_rank must be one of model, tifuknn"):
        make_model("deep", repeat_rank="frequent")


def test_the_neighbours_are_searched_among_a_bounded_sample_of_customers(monkeypatch):
    from recommender.ml import deep_repeat

    # given a pool of at most 20 neighbours' candidates for a shop of 60 customers
    monkeypatch.setattr(deep_repeat, "KNN_POOL", 20)
    histories, stamps, orders = group_shoppers(weeks=3, seed=2)
    options = {"basket_epochs": 1, "n_negatives": 8, "examples_per_batch": 16, "seed": 0, "verbose": False}
    model = make_model("deep", explore_rank="tifuknn", **options)
    model.fit(histories, timestamps=stamps, orders=orders, n_items=90)
    # then the neighbours come from 20 customers only, and every customer is still scored
    assert model.knn_.neighbours_.shape[0] == 20
    scores = model.score(histories, timestamps=stamps, orders=orders)
    assert scores.shape == (60, 90) and np.isfinite(scores).all()
