"""Offline evaluation with the leave-one-out, all-items protocol."""

from __future__ import annotations

import time

import numpy as np

from .base import CHUNK, seen_mask, top_k
from .metrics import coverage, summarize, target_ranks


def _registry():
    # imported here so `import recommender.ml.evaluation` stays light
    from .deep import DeepSequentialRecommender
    from .ease import EASERecommender
    from .popularity import PopularityRecommender
    from .transitions import TransitionRecommender

    return {
        "pop": PopularityRecommender,
        "ease": EASERecommender,
        "transitions": TransitionRecommender,
        "deep": DeepSequentialRecommender,
    }


MODEL_NAMES = ("pop", "ease", "transitions", "deep")


def make_model(name, **params):
    """Build an unfitted estimator by registry name: pop, ease, transitions, deep."""
    registry = _registry()
    if name not in registry:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(registry)}")
    return registry[name](**params)


def rank_targets(model, histories, targets, chunk=CHUNK):
    """Rank of each target with the history items removed (tie rule in metrics)."""
    ranks, tops = [], []
    for start in range(0, len(histories), chunk):
        hist = histories[start : start + chunk]
        scores = np.array(model.score(hist), copy=True)
        removed = seen_mask(hist, scores.shape[1])
        ranks.append(target_ranks(scores, targets[start : start + chunk], removed))
        scores[removed] = -np.inf
        tops.append(top_k(scores, 10)[0])
    return np.concatenate(ranks), np.concatenate(tops)


def evaluate_split(model, split, ks=(10, 20), on="test"):
    """Metrics of a fitted model on the validation or test targets of the split."""
    users = split.eval_users
    if on == "test":
        histories, targets = split.test_histories(), split.test_target[users]
    else:
        histories, targets = split.val_histories(), split.val_target[users]
    ranks, tops = rank_targets(model, histories, targets)
    result = summarize(ranks, ks)
    result["coverage@10"] = coverage(tops, split.n_items)
    return result


def fit_model(model, split, item_features=None, progress_callback=None):
    """Fit on the training part; the deep model also gets the validation targets."""
    kwargs = {"n_items": split.n_items}
    if getattr(model, "uses_validation", False):
        users = split.eval_users
        kwargs["validation"] = (split.val_histories(), split.val_target[users])
        kwargs["progress_callback"] = progress_callback
    if item_features is not None:
        kwargs["item_features"] = item_features
    return model.fit(split.train, **kwargs)


def evaluate(models, split, ks=(10, 20), item_features=None, progress_callback=None, on="test"):
    """Fit and evaluate each model; returns {"models": {name: metrics}}.

    Metrics: hr@k / ndcg@k for each k, coverage@10, train_seconds, plus the
    number of evaluated and skipped (< 3 items) users.
    """
    out = {
        "models": {},
        "evaluated_users": len(split.eval_users),
        "skipped_users": int(split.skipped_users),
        "n_items": int(split.n_items),
    }
    for name, model in models.items():
        start = time.perf_counter()
        fit_model(model, split, item_features, progress_callback)
        seconds = time.perf_counter() - start
        metrics = evaluate_split(model, split, ks, on=on)
        metrics["train_seconds"] = round(seconds, 2)
        out["models"][name] = metrics
    return out
