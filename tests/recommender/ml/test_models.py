"""Every model: learns the planted pattern, round-trips, honours recommend() options."""

import numpy as np
import pytest

from recommender.ml import load
from recommender.ml.evaluation import evaluate_split, fit_model, make_model

from .conftest import N_ITEMS

FAST = {
    "pop": {},
    "ease": {"lam": 10.0},
    "transitions": {},
    "deep": {
        "embed_dim": 16,
        "n_blocks": 1,
        "max_epochs": 4,
        "batch_size": 64,
        "verbose": False,
    },
}
RANDOM_NDCG10 = 0.07  # a random ranking of 50 items gives about 0.05


@pytest.fixture(scope="module", params=sorted(FAST))
def fitted(request, split):
    model = make_model(request.param, **FAST[request.param])
    fit_model(model, split)
    return request.param, model


def test_get_set_params(fitted):
    name, model = fitted
    params = model.get_params()
    assert params == FAST[name] | {k: v for k, v in params.items() if k not in FAST[name]}
    clone = make_model(name, **params)
    assert clone.get_params() == params
    with pytest.raises(ValueError):
        clone.set_params(no_such_param=1)


def test_recovers_planted_pattern(fitted, split):
    name, model = fitted
    ndcg = evaluate_split(model, split, ks=(10,))["ndcg@10"]
    if name == "pop":
        assert ndcg > 0.0  # popularity cannot see the sequential pattern
    else:
        assert ndcg > RANDOM_NDCG10 * 3, ndcg


def test_save_load_identical_scores(fitted, split, tmp_path):
    _, model = fitted
    histories = split.test_histories()[:20]
    model.save(tmp_path / "model")
    restored = load(tmp_path / "model")
    assert type(restored) is type(model)
    assert restored.get_params() == model.get_params()
    np.testing.assert_array_equal(restored.score(histories), model.score(histories))


def test_recommend_excludes_seen_and_restricts(fitted, split):
    _, model = fitted
    histories = split.test_histories()[:30]
    items, scores = model.recommend(histories, k=5)
    assert items.shape == scores.shape == (30, 5)
    assert np.all(np.diff(scores, axis=1) <= 0)  # best first
    for hist, recs in zip(histories, items):
        assert not set(recs) & set(hist.tolist())
    allowed = np.arange(0, N_ITEMS, 3)
    items, _ = model.recommend(histories, k=4, restrict_to=allowed)
    assert np.isin(items, allowed).all()
    items, _ = model.recommend(histories, k=N_ITEMS, exclude_seen=False)
    assert items.shape[1] == N_ITEMS and all(len(set(r)) == N_ITEMS for r in items)


def test_explain_points_at_history(fitted, split):
    _, model = fitted
    history = split.test_histories()[0]
    items, _ = model.recommend([history], k=3)
    positions = model.explain(history, items[0])
    assert positions.shape == (3,)
    assert ((positions >= 0) & (positions < len(history))).all()


def test_ease_restricted_catalogue_ranks_rest_below(split):
    model = make_model("ease", lam=10.0, max_items=10)
    fit_model(model, split)
    scores = model.score(split.test_histories()[:5])
    outside = np.setdiff1d(np.arange(N_ITEMS), model.items_)
    assert scores[:, outside].max() < scores[:, model.items_].min()


def test_transitions_explain_points_at_the_leading_item():
    model = make_model("transitions").fit([np.array([0, 1, 2, 3])] * 5, n_items=6)
    assert model.explain(np.array([5, 0, 2]), np.array([1, 3])).tolist() == [1, 2]
