"""What bounds the response model's AUC on the shop's data (issue 12): the model beside models that see more.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/cj python bench/response_ceiling.py \
        [--cutoff YYYY-MM-DD] [--windows 6] [--later-days 42] [--resamples 500] [--skip-campaigns] [--json OUT]

On the category window of ``manage.py response_eval`` (the same cut-off, the 20 categories bought by the most
households, the same training and calibration windows, the same classifier and isotonic calibration), three
models are trained, each on its own columns at every window, and scored on the test window:

- ``model``: the production features (what response_eval's model sees);
- ``knows_later_weeks``: the same plus what no model can know at the cut-off: the household's purchase days
  in the category and its shopping days in the ``--later-days`` days after the label window. A model with
  these knows each household's rate after the window as well as before it;
- ``knows_later_weeks_and_trips``: the same plus the household's shopping days inside the label window
  itself (whether and how often it came to the shop at all, not what it bought).

Each has more information than the one before, so their AUCs show how far the production features are from
what the data allows: if even a model that sees the later weeks and the window's trips stays below a goal,
no feature computed at the cut-off will reach it. For each: pooled AUC and mean per-category AUC with 95%
intervals from a bootstrap over households (a household's 20 rows drawn together), and the AUC the model
would score if its own probabilities were the truth (labels drawn from them; the mean of 200 draws): how
sharp its probabilities are, whatever the data. ``model`` is also scored with each category's level shift,
which is response_eval's figure (the shift reorders rows across categories only).

A fourth model, ``knows_window_trips``, has the production features and the label window's shopping days only.
And a bound without any classifier: if each household bought in a category in a label-length window at a
fixed rate of its own, a model that knew every rate exactly would score the AUC of those rates against labels
drawn from them. The rates are estimated from every label-length window of the year (test window and later
weeks included); the estimate's noise spreads them and inflates that AUC by about c / m for m windows, so it
is measured from all the windows and from every other one and extrapolated to m -> infinity.

The coupon campaigns task of response_eval (test: the 8 that start last) is re-run and its pooled AUC over the
test campaigns inside the data given the same bootstrap interval (over targeted households).

Prints a text summary and one JSON object; with --json, writes it. About 5 minutes on 2 cores on the
Complete Journey (loaded with ``manage.py import_data completejourney``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

VARIANTS = {
    "model": (),
    "knows_window_trips": ("window_all_days",),
    "knows_later_weeks": ("later_set_days", "later_all_days"),
    "knows_later_weeks_and_trips": ("later_set_days", "later_all_days", "window_all_days"),
}


def later_columns(shop, *, cutoff, days, later_days, item_sets, customers):
    """Per row of set_window_rows (sets in order, customers within): the purchase days in the row's set and
    all shopping days in [cutoff + days, cutoff + days + later_days), and the shopping days in the label
    window [cutoff, cutoff + days)."""
    import numpy as np

    from recommender.ml.response.features import _distinct_days

    p, n = shop.purchases, shop.purchases.n_customers

    def distinct_days(start, end, keep=True):
        owners, _days = _distinct_days(p.customer, p.day, (p.day >= start) & (p.day < end) & keep)
        return np.bincount(owners, minlength=n).astype(np.float64)

    later = (cutoff + days, cutoff + days + later_days)
    all_later, in_window = distinct_days(*later), distinct_days(cutoff, cutoff + days)
    set_later = [distinct_days(*later, keep=np.asarray(mask, bool)[p.item])[customers] for mask in item_sets.values()]
    return {
        "later_set_days": np.concatenate(set_later),
        "later_all_days": np.tile(all_later[customers], len(item_sets)),
        "window_all_days": np.tile(in_window[customers], len(item_sets)),
    }


def window_frame(shop, *, cutoff, days, later_days, item_sets):
    from recommender.ml.response.training import set_window_rows

    X, y, names, customers = set_window_rows(shop, cutoff=cutoff, item_sets=item_sets, days=days)
    base = list(X.columns)
    customers_once = customers[: len(customers) // max(len(item_sets), 1)]
    for name, values in later_columns(
        shop, cutoff=cutoff, days=days, later_days=later_days, item_sets=item_sets, customers=customers_once
    ).items():
        X[name] = values
    return X, y, names, customers, base


def stationary_rates(shop, *, cutoff, days, item_sets, customers, every=1):
    """Per row (sets in order, customers within): the share of the year's label-length windows aligned with
    the test window (every ``every``-th of them), from the household's first one with a purchase to the data's
    last whole one, in which it bought in the set: its rate if each household bought at a fixed rate of its
    own, estimated from the whole year (the test window and the weeks after it included). Returns (rates,
    windows counted)."""
    import numpy as np

    p = shop.purchases
    first_block = int(np.floor((p.day.min() - cutoff) / days))
    last_block = int(np.floor((p.day.max() + 1 - cutoff) / days)) - 1  # the last block wholly inside the data
    block = np.floor((p.day - cutoff) / days).astype(np.int64)
    inside = (block >= first_block) & (block <= last_block)
    n, span = p.n_customers, last_block - first_block + 1
    start = np.full(n, span, np.int64)
    np.minimum.at(start, p.customer[inside], block[inside] - first_block)
    counted = np.arange(span) % every == 0
    seen = np.maximum((counted[None, :] & (np.arange(span)[None, :] >= start[:, None])).sum(axis=1), 1)
    rates = []
    for mask in item_sets.values():
        keep = inside & np.asarray(mask, bool)[p.item]
        hits = np.zeros((n, span), bool)
        hits[p.customer[keep], block[keep] - first_block] = True
        rates.append((hits[:, counted].sum(axis=1) / seen)[customers])
    return np.concatenate(rates), int(counted.sum())


def stationary_ceiling(shop, *, cutoff, days, item_sets, customers, names):
    """The AUC a model that knew each household's fixed rate would score (labels drawn from the rates). A
    rate estimated from m windows is the true one plus noise of variance q(1 - q) / m, which spreads the rates
    and inflates this AUC by about c / m: measured from all the windows and from every other one, and
    extrapolated to m -> infinity (first order in 1 / m)."""
    out = {}
    for every in (1, 2):
        rates, m = stationary_rates(
            shop, cutoff=cutoff, days=days, item_sets=item_sets, customers=customers, every=every
        )
        out[every] = (m, own_truth_auc(rates), own_truth_mean_category(rates, names))
    (m1, pooled1, category1), (m2, pooled2, category2) = out[1], out[2]
    weight = (1 / m1) / (1 / m2 - 1 / m1)
    return {
        "windows": [m1, m2],
        "own_truth_pooled_auc": [round(pooled1, 4), round(pooled2, 4)],
        "own_truth_mean_category_auc": [round(category1, 4), round(category2, 4)],
        "extrapolated_pooled_auc": round(pooled1 - weight * (pooled2 - pooled1), 4),
        "extrapolated_mean_category_auc": round(category1 - weight * (category2 - category1), 4),
    }


def bootstrap(y, p, names, customers, *, resamples, seed=0):
    """95% intervals of the pooled AUC and of the mean per-category AUC, households drawn with replacement
    (each drawn household's rows weighted by how often it was drawn)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    households, of_row = np.unique(customers, return_inverse=True)
    sets = [names == name for name in dict.fromkeys(names)]
    pooled, mean_category = [], []
    for _ in range(resamples):
        weight = rng.multinomial(len(households), np.full(len(households), 1 / len(households)))[of_row]
        kept = weight > 0
        pooled.append(roc_auc_score(y[kept], p[kept], sample_weight=weight[kept]))
        mean_category.append(
            np.mean([roc_auc_score(y[m & kept], p[m & kept], sample_weight=weight[m & kept]) for m in sets])
        )
    interval = lambda values: [round(float(v), 4) for v in np.percentile(values, [2.5, 97.5])]  # noqa: E731
    return {"pooled_auc_95": interval(pooled), "mean_category_auc_95": interval(mean_category)}


def own_truth_auc(p, draws=200, seed=0):
    """The mean AUC of ``p`` against labels drawn from ``p`` itself."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    return float(np.mean([roc_auc_score(rng.random(len(p)) < p, p) for _ in range(draws)]))


def aucs(y, p, names):
    import numpy as np
    from sklearn.metrics import roc_auc_score

    per = {name: float(roc_auc_score(y[names == name], p[names == name])) for name in dict.fromkeys(names)}
    return {
        "pooled_auc": round(float(roc_auc_score(y, p)), 4),
        "mean_category_auc": round(float(np.mean(list(per.values()))), 4),
        "per_category_auc": {name: round(value, 4) for name, value in per.items()},
    }


def category_window(data, *, cutoff, days, windows, later_days, resamples):
    import numpy as np
    import pandas as pd

    from recommender.ml.response.model import ResponseModel, level_shifted, training_cutoffs
    from recommender.ml.response.training import set_level_shifts

    shop = data.shop
    item_sets = data.category_masks(before=cutoff)
    train_at, calibrate_at = training_cutoffs(cutoff, days=days, windows=windows)
    if cutoff + days + later_days > data.last_day + 1:
        raise SystemExit(f"--later-days {later_days}: the test window's later weeks run past the data's last day")
    frames = {
        c: window_frame(shop, cutoff=c, days=days, later_days=later_days, item_sets=item_sets)
        for c in [*train_at, calibrate_at, cutoff]
    }
    base = frames[cutoff][4]
    X_train = pd.concat([frames[c][0] for c in train_at], ignore_index=True)
    y_train = np.concatenate([frames[c][1] for c in train_at])
    X_cal, y_cal = frames[calibrate_at][0], frames[calibrate_at][1]
    X_test, y_test, names, customers, _base = frames[cutoff]
    out = {
        "setup": {
            "cutoff": cutoff,
            "days": days,
            "later_days": later_days,
            "train_cutoffs": train_at,
            "calibration_cutoff": calibrate_at,
            "train_rows": int(len(y_train)),
            "test_rows": int(len(y_test)),
            "test_positives": int(y_test.sum()),
            "categories": list(item_sets),
            "resamples": resamples,
        },
        "variants": {},
    }
    for variant, extra in VARIANTS.items():
        started = time.perf_counter()
        columns = [*base, *extra]
        model = ResponseModel().fit(X_train[columns], y_train, X_cal[columns], y_cal)
        p = model.predict_proba(X_test[columns])
        entry = {
            **aucs(y_test, p, names),
            **bootstrap(y_test, p, names, customers, resamples=resamples),
            "own_truth_auc": round(own_truth_auc(p), 4),
            "pred_over_actual": round(float(p.sum() / y_test.sum()), 4),
        }
        if variant == "model":
            shifted = p.copy()
            shifts = set_level_shifts(model, shop, cutoff=cutoff, item_sets=item_sets, days=days)
            for name, shift in shifts.items():
                shifted[names == name] = level_shifted(shifted[names == name], shift)
            entry["with_level_shift"] = {
                "pooled_auc": aucs(y_test, shifted, names)["pooled_auc"],
                **bootstrap(y_test, shifted, names, customers, resamples=resamples),
                "own_truth_auc": round(own_truth_auc(shifted), 4),
            }
        entry["seconds"] = round(time.perf_counter() - started, 1)
        out["variants"][variant] = entry
        print(
            f"{variant:<30} pooled AUC {entry['pooled_auc']:.4f} {entry['pooled_auc_95']}  mean per category "
            f"{entry['mean_category_auc']:.4f} {entry['mean_category_auc_95']}  own-truth AUC "
            f"{entry['own_truth_auc']:.4f}",
            file=sys.stderr,
        )
    out["stationary_rates"] = stationary_ceiling(
        shop,
        cutoff=cutoff,
        days=days,
        item_sets=item_sets,
        customers=customers[: len(y_test) // len(item_sets)],
        names=names,
    )
    print(f"stationary rates: own-truth AUC {out['stationary_rates']}", file=sys.stderr)
    return out


def own_truth_mean_category(p, names, draws=200, seed=0):
    import numpy as np

    return float(np.mean([own_truth_auc(p[names == name], draws=draws, seed=seed) for name in dict.fromkeys(names)]))


def campaigns(data, *, resamples):
    import numpy as np

    from recommender.ml.response.evaluation import campaigns_predict
    from recommender.response import external_campaigns

    found, redemptions = external_campaigns(data)
    if len(found) < 9:
        return {"skipped": f"{len(found)} campaigns with dates; the task needs 9 or more"}
    test, predicted, setup = campaigns_predict(data.shop, campaigns=found, redemptions=redemptions)
    inside = [c for c in test if c.end <= data.last_day]
    y = np.concatenate([predicted[c.id][0] for c in inside])
    p = np.concatenate([predicted[c.id][1] for c in inside])
    customers = np.concatenate([c.targeted for c in inside])
    names = np.concatenate([np.full(len(c.targeted), c.id, dtype=object) for c in inside])
    interval = bootstrap(y, p, names, customers, resamples=resamples)
    from sklearn.metrics import roc_auc_score

    return {
        "test_campaigns_inside_data": [c.id for c in inside],
        "rows": int(len(y)),
        "redeemers": int(y.sum()),
        "pooled_auc": round(float(roc_auc_score(y, p)), 4),
        "pooled_auc_95": interval["pooled_auc_95"],
        "own_truth_auc": round(own_truth_auc(p), 4),
        "parameters": setup["parameters"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cutoff", help="YYYY-MM-DD (default: response_eval's, the Monday 8 weeks before the end)")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--windows", type=int, default=6)
    parser.add_argument("--later-days", type=int, default=42)
    parser.add_argument("--resamples", type=int, default=500)
    parser.add_argument("--skip-campaigns", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args()
    os.environ.setdefault("DEBUG", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    import django

    django.setup()
    from recommender.management.commands.response_eval import _cutoff
    from recommender.response import shop_data_load

    started = time.perf_counter()
    data = shop_data_load()
    if not len(data.shop.purchases.day):
        raise SystemExit("no purchase with an item in the database")
    cutoff = _cutoff(args.cutoff, data.last_day)
    out = {
        "category_window": category_window(
            data,
            cutoff=cutoff,
            days=args.days,
            windows=args.windows,
            later_days=args.later_days,
            resamples=args.resamples,
        )
    }
    if not args.skip_campaigns:
        out["campaigns"] = campaigns(data, resamples=args.resamples)
    out["seconds"] = round(time.perf_counter() - started, 1)
    out["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
