"""Next-basket recommendation on a time split: the split, the metrics, the evaluation of a fitted model.

The protocol (issue 11; the repeat/explore split of Li et al., "A Next Basket Recommendation Reality
Check", ACM TOIS 2023, on a time split instead of held-out users):

- at a cut-off, the history is every purchase before it; the evaluated customers have at least
  ``min_orders`` orders before it and at least one order in the ``horizon`` after it;
- the target is the set of distinct items of a customer's first order at or after the cut-off;
- the ranked items are every item purchased (by anyone) before the cut-off; a target item outside them
  is a miss;
- metrics at each K, averaged over customers: recall (hits / target size), binary NDCG, PHR (share of
  customers with a hit); recall_rep over the target items the customer bought before (among customers
  with such items), recall_expl over the new ones (among customers with such items); repeat_share, the
  share of the top K the customer bought before. The explore-only task ranks only items the customer
  never bought and measures recall@10 and NDCG@10 of the new target items, over customers who have some.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field

import numpy as np

from .ranking import chunks_of, scored_chunks, seen_mask, top_k
from .registry import model_spec, spec_of

DAY = 86400.0
HORIZON_DAYS = 28  # the window after a cut-off that a target order must fall in; also T - V
CHUNK = 256  # customers scored at once: a chunk holds CHUNK x n_items floats (68k items: 70 MB)
TUNED_ON = "recall@10"  # the validation metric a model's parameters are chosen by


@dataclass
class NextBasketSplit:
    """Histories before a cut-off and the next-basket targets of the customers evaluated there."""

    cutoff: float  # seconds since the epoch
    n_items: int
    train: list  # per customer (all of them): item indices before the cut-off, time order
    train_context: dict  # {"timestamps": [...], "orders": [...]} aligned with ``train``
    users: np.ndarray  # the evaluated customers (positions in ``train``)
    targets: list  # per evaluated customer: the distinct items of their first order at or after the cut-off
    rankable: np.ndarray  # (n_items,) bool: items purchased before the cut-off
    extra: dict = field(default_factory=dict)

    def eval_histories(self):
        return [self.train[u] for u in self.users]

    def eval_context(self):
        return {name: [values[u] for u in self.users] for name, values in self.train_context.items()}


def next_basket_split(histories, timestamps, orders, cutoff, *, n_items, horizon_days=HORIZON_DAYS, min_orders=2):
    """The split at ``cutoff`` (seconds) of per-customer histories with their timestamps and order numbers.

    ``orders`` as :func:`recommender.ml.baskets.order_numbers` gives them (increasing with time).
    """
    train, stamps, numbers, users, targets = [], [], [], [], []
    end = cutoff + horizon_days * DAY
    rankable = np.zeros(n_items, dtype=bool)
    for position, (hist, ts, ords) in enumerate(zip(histories, timestamps, orders)):
        hist, ts, ords = np.asarray(hist, np.int64), np.asarray(ts, np.float64), np.asarray(ords, np.int64)
        before = ts < cutoff
        train.append(hist[before])
        stamps.append(ts[before])
        numbers.append(ords[before])
        rankable[hist[before]] = True
        after = ~before & (ts < end)
        if not after.any() or len(np.unique(ords[before])) < min_orders:
            continue
        # the first order at or after the cut-off: the one holding the earliest event after it
        first = ords[after][np.argmin(ts[after])]
        users.append(position)
        targets.append(np.unique(hist[ords == first]))
    return NextBasketSplit(
        cutoff=float(cutoff),
        n_items=int(n_items),
        train=train,
        train_context={"timestamps": stamps, "orders": numbers},
        users=np.asarray(users, dtype=np.int64),
        targets=targets,
        rankable=rankable,
    )


def default_cutoffs(timestamps, horizon_days=HORIZON_DAYS):
    """(T, V): T = midnight (UTC) of the last purchase's date minus ``horizon_days``; V = T minus as much."""
    last = max(float(np.max(ts)) for ts in timestamps if len(ts))
    test = np.floor(last / DAY) * DAY - horizon_days * DAY
    return test, test - horizon_days * DAY


# --- metrics ---------------------------------------------------------------------------------------------


def _discounts(k):
    return 1.0 / np.log2(np.arange(k) + 2.0)


def basket_metrics(top, targets, histories, ks=(10, 20)):
    """Per-customer metrics of ranked lists against target baskets, averaged: a dict of floats.

    ``top``: (n, >= max K) item indices, best first; ``targets``: per customer an array of distinct items;
    ``histories``: per customer the items bought before (what makes a target item or a recommended one a
    repeat). Keys: ``recall@K``, ``ndcg@K``, ``phr@K``, ``recall_rep@K``, ``recall_expl@K``,
    ``repeat_share@K`` for each K, and ``n``, ``n_rep``, ``n_expl`` (customers counted by each).
    """
    per = basket_metrics_per_customer(top, targets, histories, ks)
    out = {"n": len(targets), "n_rep": int(per["has_rep"].sum()), "n_expl": int(per["has_expl"].sum())}
    for k in ks:
        for name in ("recall", "ndcg", "phr", "repeat_share"):
            out[f"{name}@{k}"] = _mean(per[f"{name}@{k}"])
        out[f"recall_rep@{k}"] = _mean(per[f"recall_rep@{k}"][per["has_rep"]])
        out[f"recall_expl@{k}"] = _mean(per[f"recall_expl@{k}"][per["has_expl"]])
    return out


def basket_metrics_per_customer(top, targets, histories, ks=(10, 20)):
    """The per-customer arrays behind :func:`basket_metrics` (for paired intervals between models)."""
    n = len(targets)
    per = {"has_rep": np.zeros(n, bool), "has_expl": np.zeros(n, bool)}
    for k in ks:
        for name in ("recall", "ndcg", "phr", "repeat_share", "recall_rep", "recall_expl"):
            per[f"{name}@{k}"] = np.zeros(n)
    for row, (target, history) in enumerate(zip(targets, histories)):
        target = np.asarray(target, np.int64)
        bought = np.isin(target, history)
        per["has_rep"][row], per["has_expl"][row] = bought.any(), (~bought).any()
        for k in ks:
            ranked = np.asarray(top[row][:k], np.int64)
            hit = np.isin(ranked, target)
            hits_rep = np.isin(target[bought], ranked).sum()
            hits_expl = np.isin(target[~bought], ranked).sum()
            per[f"recall@{k}"][row] = hit.sum() / len(target)
            ideal = _discounts(min(k, len(target))).sum()
            per[f"ndcg@{k}"][row] = (_discounts(len(ranked)) * hit).sum() / ideal
            per[f"phr@{k}"][row] = float(hit.any())
            per[f"repeat_share@{k}"][row] = np.isin(ranked, history).mean() if len(ranked) else 0.0
            per[f"recall_rep@{k}"][row] = hits_rep / max(bought.sum(), 1)
            per[f"recall_expl@{k}"][row] = hits_expl / max((~bought).sum(), 1)
    return per


def explore_metrics(top, targets, histories, k=10):
    """The explore-only task: recall@k and NDCG@k of the new target items, over customers who have some.

    ``top`` must rank only items the customer never bought (see :func:`evaluate_next_basket`).
    """
    per = explore_metrics_per_customer(top, targets, histories, k)
    return {f"recall@{k}": _mean(per["recall"]), f"ndcg@{k}": _mean(per["ndcg"]), "n": len(per["recall"])}


def explore_metrics_per_customer(top, targets, histories, k=10):
    """Per customer with a new target item: {"rows", "recall", "ndcg"} of the explore-only task."""
    rows, recall, ndcg = [], [], []
    for row, (target, history) in enumerate(zip(targets, histories)):
        new = np.setdiff1d(np.asarray(target, np.int64), history)
        if not len(new):
            continue
        ranked = np.asarray(top[row][:k], np.int64)
        hit = np.isin(ranked, new)
        rows.append(row)
        recall.append(hit.sum() / len(new))
        ndcg.append((_discounts(len(ranked)) * hit).sum() / _discounts(min(k, len(new))).sum())
    return {"rows": np.asarray(rows, np.int64), "recall": np.asarray(recall), "ndcg": np.asarray(ndcg)}


def _mean(values):
    return float(np.mean(values)) if len(values) else 0.0


# --- evaluating a fitted model ---------------------------------------------------------------------------


def ranked_lists(model, split, k, *, explore=False, chunk=CHUNK):
    """Top-k lists of the evaluated customers: only rankable items; with ``explore``, none they bought."""
    histories = split.eval_histories()
    # Timestamps and orders go to the models of the table that read orders, as in fit_on; the others
    # were fitted on the item sequences alone (and the deep model's score takes no orders).
    context = split.eval_context() if spec_of(model).uses_orders else {}
    unrankable = ~split.rankable

    def hide(_rows, chunk_histories, n_items):
        hidden = np.broadcast_to(unrankable, (len(chunk_histories), n_items)).copy()
        return hidden | seen_mask(chunk_histories, n_items) if explore else hidden

    tops = []
    for scored in scored_chunks(model.score, chunks_of(histories, context, chunk), hide):
        masked = scored.masked()
        masked[np.isnan(masked)] = -np.inf
        items, scores = top_k(masked, k)
        items[~np.isfinite(scores)] = -1  # fewer than k rankable items: the rest is no recommendation
        tops.append(items)
    return np.concatenate(tops) if tops else np.zeros((0, k), np.int64)


def evaluate_next_basket(model, split, ks=(10, 20), per_customer=None):
    """The metrics of a fitted model on the split: basket_metrics plus ``explore`` (recall/ndcg@10).

    ``per_customer``: an optional dict that receives the per-customer ``recall@10`` (every evaluated
    customer) and ``explore_recall@10`` (those with a new target item), for paired intervals.
    """
    histories = split.eval_histories()
    top = ranked_lists(model, split, max(ks))
    result = basket_metrics(top, split.targets, histories, ks)
    explore_top = ranked_lists(model, split, 10, explore=True)
    result["explore"] = explore_metrics(explore_top, split.targets, histories, 10)
    if per_customer is not None:
        per_customer["recall@10"] = basket_metrics_per_customer(top, split.targets, histories, (10,))["recall@10"]
        per_customer["explore_recall@10"] = explore_metrics_per_customer(explore_top, split.targets, histories)[
            "recall"
        ]
    return result


# --- tuning at V, then one run at T ----------------------------------------------------------------------


def parameter_grid(grid):
    """Every combination of a ``{name: [values]}`` grid, as dicts (one empty dict for an empty grid)."""
    names = sorted(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def fit_on(model, split, **extra):
    """Fit on the split's histories; a model of the table that reads orders gets timestamps and orders."""
    spec = spec_of(model)
    context = split.train_context if spec.uses_orders else {}
    return model.fit(split.train, n_items=split.n_items, **context, **extra)


def validation_recall(model, validation):
    """Recall@10 of a fitted model at the validation split: what the tuning chooses by."""
    top = ranked_lists(model, validation, 10)
    return basket_metrics(top, validation.targets, validation.eval_histories(), (10,))[TUNED_ON]


def validation_kind_recall(model, validation, kind):
    """A fitted model's recall@10 of one kind of item at the validation split: ``"repeat"``, recall_rep@10
    (the items bought before among its top 10, over the customers whose target holds one); ``"explore"``,
    the explore-only recall@10 (only never-bought items ranked, over the customers whose target holds one).
    What a ``rank_choice`` is chosen by."""
    histories = validation.eval_histories()
    if kind == "repeat":
        top = ranked_lists(model, validation, 10)
        return basket_metrics(top, validation.targets, histories, (10,))["recall_rep@10"]
    top = ranked_lists(model, validation, 10, explore=True)
    return explore_metrics(top, validation.targets, histories, 10)["recall@10"]


KIND_METRICS = {"repeat": "recall_rep@10", "explore": "explore-only recall@10"}


def choose_rankings(name, params, validation, *, log=print):
    """The model's ``rank_choice`` (registry.py) chosen at V: each parameter by its kind's recall@10 there
    (:func:`validation_kind_recall`), the first of equal bests winning.

    Those parameters change only how a fitted model ranks one kind of item, so the model is fitted once
    with ``params`` at the validation split, with the last value of each (the one that needs the most of
    the fit: the deep model's TIFU-KNN neighbours), and scored with each value set in turn. Returns
    (params with the chosen values, {parameter: {"metric", "chosen", "measured": {value: figure}}}, the
    fitted model set to the chosen values). Without a rank choice: (params, {}, None), nothing fitted.
    """
    spec = model_spec(name)
    if not spec.rank_choice:
        return params, {}, None
    model = fit_on(
        spec.make(**{**params, **{key: values[-1] for key, (_kind, values) in spec.rank_choice.items()}}), validation
    )
    params, report = dict(params), {}
    for key, (kind, values) in spec.rank_choice.items():
        measured = {}
        for value in values:
            setattr(model, key, value)
            measured[value] = validation_kind_recall(model, validation, kind)
            log(f"{name} {key} {value}: validation {KIND_METRICS[kind]} {measured[value]:.4f}")
        chosen = max(values, key=lambda value: measured[value])  # the first of equal bests
        setattr(model, key, chosen)
        params[key] = chosen
        report[key] = {"metric": KIND_METRICS[kind], "chosen": chosen, "measured": measured}
    return params, report, model


def tune_and_test(name, validation, test, *, ks=(10, 20), seed=0, log=print, per_customer=None):
    """Choose the model's parameters on its grid by recall@10 at the validation split, then fit once at the
    test split and measure it there. Returns the test metrics plus ``params``, ``validation_recall@10``,
    ``train_seconds`` (the fit at T) and ``tuning_seconds``.

    A model with epochs (its table entry's ``epochs_param``) is fitted at V with the largest number of
    epochs its grid gives, measured at V after each epoch, and the best epoch joins its parameters: the
    run at T trains exactly that many epochs (and reports ``seconds_per_epoch``). A model with a
    ``rank_choice`` then has each kind's ranking chosen by that kind's recall@10 at V
    (:func:`choose_rankings`; ``rank_choice`` in the result). ``per_customer``: as in
    :func:`evaluate_next_basket`, at T.
    """
    spec = model_spec(name)
    fixed = {"seed": seed} if "seed" in spec.defaults else {}
    started, best = time.perf_counter(), None
    for params in parameter_grid(spec.grid):
        model = spec.make(**{**spec.defaults, **fixed, **params})
        if spec.epochs_param:
            curve = []

            def measure(epoch, fitted, curve=curve, params=params):
                value = validation_recall(fitted, validation)
                log(f"{name} {params} epoch {epoch}: validation {TUNED_ON} {value:.4f}")
                curve.append(value)
                return value

            fit_on(model, validation, epoch_callback=measure)
            epochs = int(np.argmax(curve)) + 1  # the first of equal bests: fewer epochs
            params, value = {**params, spec.epochs_param: epochs}, curve[epochs - 1]
        else:
            value = validation_recall(fit_on(model, validation), validation)
        log(f"{name} {params}: validation {TUNED_ON} {value:.4f}")
        if best is None or value > best[1]:
            best = (params, value)
    params = {**spec.defaults, **fixed, **best[0]}
    params, rankings, _model = choose_rankings(name, params, validation, log=log)
    tuning_seconds = time.perf_counter() - started
    started = time.perf_counter()
    model = fit_on(spec.make(**params), test)
    train_seconds = time.perf_counter() - started
    result = evaluate_next_basket(model, test, ks, per_customer=per_customer)
    result.update(
        {
            "params": params,
            f"validation_{TUNED_ON}": best[1],
            "train_seconds": round(train_seconds, 2),
            "tuning_seconds": round(tuning_seconds, 1),
        }
    )
    if rankings:
        result["rank_choice"] = rankings
    if hasattr(model, "seconds_per_epoch_"):
        result["seconds_per_epoch"] = round(model.seconds_per_epoch_, 2)
    return result


def versus_best(per_customer, model, baselines, **bootstrap):
    """The paired bootstrap intervals of ``model`` minus the best of ``baselines`` (by test recall@10) on
    recall@10 over every household and on the explore-only recall@10 over those with a new target item;
    plus the same against the best baseline on the explore-only task where that is another model.

    ``per_customer``: {name: the per-customer dict :func:`tune_and_test` filled}; ``baselines``:
    {name: its result}.
    """
    from .bootstrap import paired_bootstrap

    def against(name):
        out = {"baseline": name}
        for metric in ("recall@10", "explore_recall@10"):  # None where no household counts (no new target item)
            mine, theirs = per_customer[model][metric], per_customer[name][metric]
            out[metric] = paired_bootstrap(mine, theirs, **bootstrap) if len(mine) else None
        return out

    best = max(baselines, key=lambda name: baselines[name]["recall@10"])
    best_explore = max(baselines, key=lambda name: baselines[name]["explore"]["recall@10"])
    out = {"vs_best": against(best)}
    out["vs_best_explore"] = out["vs_best"] if best_explore == best else against(best_explore)
    return out


def format_versus(name, comparison):
    """One line per comparison: the differences and their 95% intervals."""
    lines = []
    for key in ("vs_best", "vs_best_explore"):
        row = comparison[key]
        parts = [
            f"{metric} {row[metric]['diff']:+.4f} [{row[metric]['low']:+.4f}, {row[metric]['high']:+.4f}]"
            if row[metric]
            else f"{metric}: no household"
            for metric in ("recall@10", "explore_recall@10")
        ]
        lines.append(f"{name} - {row['baseline']} ({key}, paired bootstrap 95%): " + "; ".join(parts))
    return "\n".join(lines)


def format_table(results, ks=(10, 20)):
    """The results as a Markdown table: total, repeat and explore metrics per model."""
    columns = [f"{m}@{k}" for k in ks for m in ("recall", "ndcg", "phr", "recall_rep", "recall_expl", "repeat_share")]
    head = ["model", *columns, "explore recall@10", "explore ndcg@10", "train s", "s/epoch"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["models"].items():
        cells = [f"{row[c]:.4f}" for c in columns]
        cells += [
            f"{row['explore']['recall@10']:.4f}",
            f"{row['explore']['ndcg@10']:.4f}",
            f"{row['train_seconds']}",
            f"{row.get('seconds_per_epoch', '')}",
        ]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)
