"""Fitting and offline evaluation with the leave-one-out, all-items protocol.

``fit_and_evaluate`` is the one recipe for "train, then measure": the command line (``cli.py``), the
``recsys_eval`` management command and the training of a model version all go through it, and the
table of models (``registry.py``) says what each model's ``fit`` is given.
"""

from __future__ import annotations

import time

import numpy as np

from .metrics import coverage, summarize, target_ranks
from .ranking import CHUNK, chunks_of, hide_seen, scored_chunks
from .registry import make_model, model_spec, spec_of

__all__ = [
    "evaluate",
    "evaluate_split",
    "evaluate_targets",
    "fit_and_evaluate",
    "fit_model",
    "make_model",
    "rank_targets",
    "sized_model",
]

PARTS = ("validation", "test")


def rank_targets(model, histories, targets, context=None, chunk=CHUNK):
    """Rank of each target with the history items removed (tie rule in metrics), and each top 10."""
    targets = np.asarray(targets)
    ranks, tops = [], []
    for scored in scored_chunks(model.score, chunks_of(histories, context, chunk), hide_seen):
        ranks.append(target_ranks(scored.scores, targets[scored.key], scored.hidden))
        tops.append(scored.top(10)[0])
    return np.concatenate(ranks), np.concatenate(tops)


def evaluate_targets(model, histories, targets, n_items, context=None, ks=(10, 20)):
    """hr@k and ndcg@k for each k, and coverage@10, of a fitted model; {} when there is no target."""
    if not len(histories):
        return {}
    ranks, tops = rank_targets(model, histories, targets, context)
    result = summarize(ranks, ks)
    result["coverage@10"] = coverage(tops, n_items)
    return result


def evaluate_split(model, split, ks=(10, 20), on="test", context=None):
    """Metrics of a fitted model on the validation or test targets of the split.

    ``context``: optional ``{"validation": {...}, "test": {...}}`` event types and timestamps
    aligned with the evaluated histories.
    """
    users = split.eval_users
    if on == "test":
        histories, targets = split.test_histories(), split.test_target[users]
    else:
        histories, targets = split.val_histories(), split.val_target[users]
    return evaluate_targets(model, histories, targets, split.n_items, (context or {}).get(on), ks)


def sized_model(name, split, parameters=None):
    """(model, parameters): the named model, its parameters fitted to the split's catalogue where the
    table of models says so (the deep model's sequence length and batch size), unless given."""
    spec = model_spec(name)
    parameters = dict(parameters or {})
    if spec.sized is not None:
        parameters = spec.sized(histories=split.train, n_items=split.n_items, parameters=parameters)
    return spec.make(**parameters), parameters


def fit_model(model, split, context=None, item_features=None, progress_callback=None):
    """Fit on the training part. A model that uses validation also gets the validation targets and
    reports progress; one that uses context gets event types, timestamps and item features.

    ``context``: optional ``{"train": {...}, "validation": {...}}`` event types and timestamps
    aligned with the split's training and validation histories.
    """
    spec, context = spec_of(model), context or {}
    kwargs = {"n_items": split.n_items}
    if spec.uses_validation:
        validation = (split.val_histories(), split.val_target[split.eval_users])
        kwargs["validation"] = validation + ((context["validation"],) if "validation" in context else ())
        kwargs["progress_callback"] = progress_callback
    if spec.uses_context:
        kwargs.update(context.get("train", {}))
        if item_features is not None:
            kwargs["item_features"] = item_features
    return model.fit(split.train, **kwargs)


def fit_and_evaluate(model, split, *, ks=(10, 20), on=PARTS, context=None, item_features=None, progress_callback=None):
    """Fit the model on the split (``fit_model``) and measure it on the ``on`` targets.

    Returns ``{"validation": metrics, "test": metrics, "train_seconds": s}`` (the parts asked for;
    ``train_seconds`` is the fit alone).
    """
    started = time.perf_counter()
    fit_model(model, split, context, item_features, progress_callback)
    seconds = time.perf_counter() - started
    result = {part: evaluate_split(model, split, ks, on=part, context=context) for part in on}
    result["train_seconds"] = round(seconds, 2)
    return result


def evaluate(models, split, ks=(10, 20), item_features=None, progress_callback=None, on="test"):
    """Fit and evaluate each model of ``{name: model}``; returns {"models": {name: metrics}}.

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
        measured = fit_and_evaluate(
            model, split, ks=ks, on=(on,), item_features=item_features, progress_callback=progress_callback
        )
        out["models"][name] = {**measured[on], "train_seconds": measured["train_seconds"]}
    return out
