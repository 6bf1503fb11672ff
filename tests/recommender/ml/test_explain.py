"""Explanations: faithful to the model's scores, computed in one batched pass."""

import numpy as np
import pytest

from recommender.ml import make_model
from recommender.ml.explain import CANDIDATES, removal_reasons, repeat_pattern, repeat_text

from .conftest import N_ITEMS, planted_sequences


@pytest.mark.parametrize("name, params", [("ease", {}), ("transitions", {}), ("tifuknn", {"n_neighbors": 10})])
def test_removing_the_named_item_lowers_the_recommended_items_score(name, params):
    # given a fitted model and each customer's top new items
    histories = planted_sequences(n_users=120)
    model = make_model(name, **params).fit(histories, n_items=N_ITEMS)
    tops, _ = model.recommend(histories[:30], k=5)
    named = 0
    for history, items in zip(histories[:30], tops):
        calls = []

        def counted(batch, calls=calls, **context):
            calls.append(len(batch))
            return model.score(batch, **context)

        # when the reasons are computed
        positions, drops = removal_reasons(counted, history, items)
        # then in one batched pass, and each named item's removal lowers that item's score by what it says
        assert len(calls) == 1 and calls[0] <= CANDIDATES + 1
        full = model.score([history])[0]
        for item, position, drop in zip(items, positions, drops):
            if position < 0:
                continue
            named += 1
            without = model.score([history[history != history[position]]])[0]
            assert without[item] < full[item]
            assert (full[item] - without[item]) / abs(full[item]) == pytest.approx(drop, rel=1e-4)
    assert named > 0


def test_tifuknn_scores_chosen_items_as_its_full_scores_do():
    histories = planted_sequences(n_users=60)
    model = make_model("tifuknn", n_neighbors=10).fit(histories, n_items=N_ITEMS)
    items = np.array([3, 0, 17])
    np.testing.assert_allclose(model.score_items(histories, items), model.score(histories)[:, items], rtol=1e-6)


def test_a_removal_that_changes_nothing_names_nothing():
    # a scorer that ignores the history: no item is material
    positions, drops = removal_reasons(lambda batch, **_c: np.ones((len(batch), 5)), np.array([1, 2]), [3, 4])
    assert positions.tolist() == [-1, -1] and drops.tolist() == [0.0, 0.0]


def test_context_arrays_are_cut_with_the_history():
    seen = []

    def score(batch, timestamps):
        seen.extend(len(h) == len(t) for h, t in zip(batch, timestamps))
        return np.array([[float(len(h))] * 4 for h in batch])

    removal_reasons(score, np.array([0, 1, 0]), [3], {"timestamps": np.array([1.0, 2.0, 3.0])})
    assert seen and all(seen)


def test_repeat_pattern_says_how_often_and_when():
    day = 86400.0
    times, every, ago = repeat_pattern([0.0, 12 * day, 12 * day + 60, 24 * day], now=33 * day)
    assert (times, every, ago) == (3, 12.0, pytest.approx(9.0, abs=0.01))
    assert repeat_text(times, every, ago) == "you buy this about every 12 days; last time 9 days ago"
    assert repeat_text(*repeat_pattern([0.0], now=30 * day)) == "you bought this once, 30 days ago"
