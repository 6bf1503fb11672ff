"""Deep model with event types, timestamps and item attributes; lazy TensorFlow import."""

import subprocess
import sys

import numpy as np

from recommender.ml import load
from recommender.ml.deep import DeepSequentialRecommender

from .conftest import N_ITEMS


def test_package_import_does_not_load_tensorflow():
    code = (
        "import sys, recommender.ml, recommender.ml.evaluation, recommender.ml.deep, recommender.ml.cli; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules; "
        "assert not any(m.startswith('django') for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_with_events_timestamps_attributes_round_trips(split, tmp_path):
    rng = np.random.default_rng(1)
    train = split.train
    events = [rng.integers(0, 3, len(h)) for h in train]
    stamps = [np.cumsum(rng.integers(60, 86400, len(h))) for h in train]
    attributes = [np.array([i % 5, 5 + i % 7]) for i in range(N_ITEMS)]
    model = DeepSequentialRecommender(embed_dim=16, n_blocks=1, max_epochs=2, verbose=False)
    seen = []
    model.fit(
        train,
        event_types=events,
        timestamps=stamps,
        item_features=attributes,
        n_items=N_ITEMS,
        validation=(split.val_histories(), split.val_target[split.eval_users]),
        progress_callback=lambda epoch, metrics, elapsed, eta, **step: step or seen.append((epoch, metrics)),
    )
    assert [s[0] for s in seen] == [1, 2] and "val_ndcg@10" in seen[0][1]  # the reports at the epochs' ends
    hist, ev, ts = train[:5], events[:5], stamps[:5]
    scores = model.score(hist, event_types=ev, timestamps=ts)
    assert scores.shape == (5, N_ITEMS)
    model.save(tmp_path / "deep")
    restored = load(tmp_path / "deep")
    np.testing.assert_array_equal(restored.score(hist, event_types=ev, timestamps=ts), scores)
    items, _ = restored.recommend(hist, k=3, event_types=ev, timestamps=ts)
    assert items.shape == (5, 3)


def test_same_seed_same_model(split):
    def fitted_scores():
        model = DeepSequentialRecommender(embed_dim=16, n_blocks=1, max_epochs=1, verbose=False, seed=3)
        model.fit(split.train, n_items=N_ITEMS)
        return model.score(split.test_histories()[:10])

    np.testing.assert_array_equal(fitted_scores(), fitted_scores())


def test_sampled_softmax_path_learns(split):
    model = DeepSequentialRecommender(
        embed_dim=16,
        n_blocks=1,
        max_epochs=3,
        verbose=False,
        sampled_softmax_threshold=10,
        n_sampled=20,
    )
    model.fit(
        split.train,
        n_items=N_ITEMS,
        validation=(split.val_histories(), split.val_target[split.eval_users]),
    )
    assert not model._full_softmax
    assert model.best_val_ndcg_ > 0.2  # random ranking of 50 items: about 0.05
