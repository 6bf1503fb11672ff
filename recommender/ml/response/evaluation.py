"""Backtests of the response model (``manage.py response_eval`` loads the data and calls these).

Two tasks, both strictly forward in time:

- the category window: will a customer buy in a category in [cutoff, cutoff + 14 days)? The model trains
  on earlier windows only (model.training_cutoffs), beside two baselines in the same run;
- the shop's own coupon campaigns: will a targeted customer redeem one of the campaign's coupons during
  it? The model trains on the campaigns that ended before the first test campaign starts, with every
  feature computed at each campaign's start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import CutoffFeatures, response_labels
from .model import SET_PRIOR, ResponseModel, training_cutoffs
from .training import response_model_fit, set_window_predict, set_window_rows

PROXY_BASE_RATE = 0.05  # the campaign's default base response rate, as generation used it


def scores(y, p):
    """AUC, average precision and predicted / actual (sum of probabilities / sum of labels)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, p = np.asarray(y), np.asarray(p, np.float64)
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both else None,
        "ap": float(average_precision_score(y, p)) if both else None,
        "pred_over_actual": float(p.sum() / y.sum()) if y.sum() else None,
        "n": int(len(y)),
        "actual": int(y.sum()),
        "predicted": float(p.sum()),
    }


def transition_mass(purchases, *, cutoff, item_sets, customers):
    """The current proxy's mass: an item-to-item transition recommender fitted on the purchases before the
    cut-off, its next-item distribution (predict_proba's rule: clipped scores normalised, 1% uniform; the
    popularity fallback for a customer no transition reaches) summed over each set. {name: per customer}."""
    from ..transitions import TransitionRecommender, last_items_query

    past = purchases.window(-np.inf, cutoff)
    order = np.lexsort((past.day, past.customer))
    histories = np.split(past.item[order], np.flatnonzero(np.diff(past.customer[order])) + 1)
    owners = past.customer[order][np.r_[0, np.flatnonzero(np.diff(past.customer[order])) + 1]] if len(order) else []
    by_customer = dict(zip(np.asarray(owners).tolist(), histories))
    n_items = purchases.n_items
    model = TransitionRecommender().fit([h for h in histories if len(h)], n_items=n_items)
    chosen = [by_customer.get(int(c), np.zeros(0, np.int64)) for c in customers]
    raw = last_items_query(chosen, n_items, model.n_last, model.decay) @ model.P_  # sparse (n, items)
    masks = np.stack([np.asarray(m, np.float64) for m in item_sets.values()], axis=1)
    totals = np.asarray(raw.sum(axis=1)).ravel()
    on_sets = np.asarray(raw @ masks)
    popularity = model.popularity_ / max(model.popularity_.sum(), 1e-12)
    fallback = popularity @ masks
    share = np.where(totals[:, None] > 0, on_sets / np.maximum(totals[:, None], 1e-12), fallback[None, :])
    uniform = masks.sum(axis=0) / n_items
    mass = 0.99 * share + 0.01 * uniform[None, :]
    return {name: mass[:, k] for k, name in enumerate(item_sets)}


def category_window_evaluate(shop, *, cutoff, item_sets, days=14, windows=6, with_mass=True, params=None):
    """The category window task at ``cutoff``: the response model against the 90-day purchase count and
    the current proxy. Returns the JSON-ready report ("pooled", "per_category", "baselines", "setup").

    The model's features are the production ones (no recommender mass: generation does not compute it);
    ``with_mass`` computes the recommender's mass at ``cutoff`` for the current proxy's baseline only."""
    model, fit_report = response_model_fit(
        shop, cutoff=cutoff, item_sets=item_sets, days=days, windows=windows, params=params
    )
    X, predicted, names, _customers = set_window_predict(model, shop, cutoff=cutoff, item_sets=item_sets, days=days)
    y = np.concatenate(
        [
            response_labels(shop.purchases, cutoff=cutoff, item_set=m, customers=shop.buyers_before(cutoff), days=days)
            for m in item_sets.values()
        ]
    )
    pooled_map = model.predict_proba(X)  # before each set's level shift
    report = {
        "pooled": {
            **scores(y, predicted),
            "auc_before_calibration": scores(y, model.predict_raw(X))["auc"],
            "pred_over_actual_pooled_map": scores(y, pooled_map)["pred_over_actual"],
        },
        "per_category": {
            name: {
                **scores(y[names == name], predicted[names == name]),
                "pred_over_actual_pooled_map": scores(y[names == name], pooled_map[names == name])["pred_over_actual"],
            }
            for name in item_sets
        },
    }
    per_auc = [v["auc"] for v in report["per_category"].values() if v["auc"] is not None]
    report["mean_category_auc"] = float(np.mean(per_auc)) if per_auc else None
    outside = [n for n, v in report["per_category"].items() if not 0.9 <= (v["pred_over_actual"] or 0) <= 1.1]
    report["categories_outside_0.9_1.1"] = outside
    mass = (
        transition_mass(shop.purchases, cutoff=cutoff, item_sets=item_sets, customers=shop.buyers_before(cutoff))
        if with_mass
        else None
    )
    report["baselines"] = _baselines(
        shop, cutoff=cutoff, item_sets=item_sets, days=days, X=X, y=y, names=names, mass=mass
    )
    report["setup"] = {
        **fit_report,
        "cutoff": cutoff,
        "days": days,
        "test_rows": len(y),
        "customers": int(len(shop.buyers_before(cutoff))),
        "set_prior": SET_PRIOR,
        "features": list(X.columns),
    }
    return report


def _baselines(shop, *, cutoff, item_sets, days, X, y, names, mass=None):
    """The 90-day purchase count, calibrated by the response rate of each count in the calibration window
    (an isotonic map fitted on [cutoff - days, cutoff)), and the current proxy (base rate x mass)."""
    from sklearn.isotonic import IsotonicRegression

    calibrate_at = training_cutoffs(cutoff, days=days, windows=1)[1]
    X_cal, y_cal, _n, _c = set_window_rows(shop, cutoff=calibrate_at, item_sets=item_sets, days=days)
    count_col = "set_days_90"
    table = IsotonicRegression(out_of_bounds="clip").fit(X_cal[count_col], y_cal)
    out = {"purchase_days_90": _with_per_category(y, table.predict(X[count_col]), X[count_col], names, item_sets)}
    if mass is not None:
        proxy = PROXY_BASE_RATE * np.concatenate([mass[name] for name in item_sets])
        out["current_proxy"] = _with_per_category(y, proxy, proxy, names, item_sets)
    return out


def _with_per_category(y, probability, ranking, names, item_sets):
    """Scores with the ranking's AUC/AP and the probability's predicted / actual, pooled and per category."""
    ranking = np.asarray(ranking, np.float64)
    pooled = scores(y, ranking)
    pooled.update({k: v for k, v in scores(y, probability).items() if k in ("pred_over_actual", "predicted")})
    per = {}
    for name in item_sets:
        keep = names == name
        entry = scores(y[keep], ranking[keep])
        entry.update({k: v for k, v in scores(y[keep], probability[keep]).items() if k in ("pred_over_actual",)})
        per[name] = entry
    aucs = [v["auc"] for v in per.values() if v["auc"] is not None]
    return {**pooled, "mean_category_auc": float(np.mean(aucs)) if aucs else None, "per_category": per}


@dataclass(frozen=True)
class Campaign:
    """One of the shop's past coupon campaigns, in the purchase log's indices and days."""

    id: str
    kind: str  # the shop's campaign type
    start: float  # first day (inclusive)
    end: float  # last day + 1 (exclusive)
    targeted: np.ndarray  # customer indices
    items: np.ndarray  # bool mask over items: what its coupons cover
    redeemers: np.ndarray  # customer indices that redeemed one of its coupons during it


@dataclass(frozen=True)
class Redemptions:
    """Every coupon redemption: customer index, day, campaign id (for the features of later campaigns)."""

    customer: np.ndarray
    day: np.ndarray
    campaign: np.ndarray


def campaign_rows(shop, campaign, redemptions, campaigns):
    """Features of a campaign's targeted customers at its start, and their labels. The earlier campaigns
    count only when they ended before this one starts, and redemptions only before its start."""
    maker = CutoffFeatures(
        shop.purchases,
        cutoff=campaign.start,
        item_group=shop.item_group,
        demographics=shop.demographics,
        demographic_names=shop.demographic_names,
    )
    X = maker.features(campaign.items, campaign.targeted)
    n = shop.purchases.n_customers
    before = redemptions.day < campaign.start
    X["redemptions_before"] = np.bincount(redemptions.customer[before], minlength=n)[campaign.targeted]
    # earlier campaigns that targeted the customer, and how many of them the customer redeemed
    earlier = [c for c in campaigns if c.end <= campaign.start]
    targeted_before, redeemed_before = np.zeros(n), np.zeros(n)
    for other in earlier:
        targeted_before[other.targeted] += 1
        redeemed_before[other.redeemers] += 1
    X["campaigns_targeted_before"] = targeted_before[campaign.targeted]
    X["campaigns_redeemed_before"] = redeemed_before[campaign.targeted]
    X["campaign_days"] = campaign.end - campaign.start
    X["campaign_items_log"] = np.log1p(campaign.items.sum())
    X["campaign_targeted_log"] = np.log1p(len(campaign.targeted))
    kinds = sorted({c.kind for c in campaigns})
    X["campaign_kind"] = float(kinds.index(campaign.kind))
    y = np.isin(campaign.targeted, campaign.redeemers).astype(np.int8)
    return X, y


def campaigns_predict(shop, *, campaigns, redemptions, n_test=8, params=None):
    """Train on the campaigns that ended before the first of the ``n_test`` last-starting ones starts
    (calibrated on the latest-ending quarter of them) and predict the test campaigns' targeted customers.
    Returns (test campaigns in start order, {campaign id: (labels, probabilities)}, setup)."""
    ordered = sorted(campaigns, key=lambda c: (c.start, c.id))
    test = ordered[-n_test:]
    first_test = min(c.start for c in test)
    train = sorted([c for c in campaigns if c.end <= first_test], key=lambda c: (c.end, c.id))
    if len(train) < 2:
        raise ValueError(f"{len(train)} campaigns ended before the first test campaign starts: too few to train")
    n_cal = max(1, len(train) // 4)
    fit_part, cal_part = train[:-n_cal], train[-n_cal:]
    rows = {c.id: campaign_rows(shop, c, redemptions, campaigns) for c in [*train, *test]}
    X = pd.concat([rows[c.id][0] for c in fit_part], ignore_index=True)
    y = np.concatenate([rows[c.id][1] for c in fit_part])
    X_cal = pd.concat([rows[c.id][0] for c in cal_part], ignore_index=True)
    y_cal = np.concatenate([rows[c.id][1] for c in cal_part])
    model, chosen = _campaign_model(X, y, X_cal, y_cal, params)
    predicted = {c.id: (rows[c.id][1], model.predict_proba(rows[c.id][0])) for c in test}
    setup = {
        "train_campaigns": [c.id for c in fit_part],
        "calibration_campaigns": [c.id for c in cal_part],
        "test_campaigns": [c.id for c in test],
        "train_rows": int(len(y)),
        "calibration_rows": int(len(y_cal)),
        "parameters": chosen,
    }
    return test, predicted, setup


def campaigns_evaluate(shop, *, campaigns, redemptions, n_test=8, data_end=None, params=None):
    """The test campaigns of campaigns_predict scored: pooled over those whose window lies wholly inside
    the data (end <= data_end), over all of them, and every test campaign reported."""
    test, predicted, setup = campaigns_predict(
        shop, campaigns=campaigns, redemptions=redemptions, n_test=n_test, params=params
    )
    per, pooled_y, pooled_p = {}, [], []
    for campaign in test:
        y_t, p = predicted[campaign.id]
        inside = data_end is None or campaign.end <= data_end
        per[campaign.id] = {
            "auc": scores(y_t, p)["auc"],
            "targeted": int(len(y_t)),
            "actual": int(y_t.sum()),
            "predicted": float(p.sum()),
            "inside_data": bool(inside),
        }
        if inside:
            pooled_y.append(y_t)
            pooled_p.append(p)
    pooled = scores(np.concatenate(pooled_y), np.concatenate(pooled_p)) if pooled_y else {}
    all_y = np.concatenate([predicted[c.id][0] for c in test])
    all_p = np.concatenate([predicted[c.id][1] for c in test])
    return {"pooled": pooled, "pooled_all_test": scores(all_y, all_p), "per_campaign": per, "setup": setup}


# A few thousand rows overfit a large ensemble: candidates from large to small, each alone and blended
# with a logistic regression, chosen by their AUC on the calibration campaigns (later than the training
# ones, earlier than every test campaign).
CAMPAIGN_CANDIDATES = (
    {"max_iter": 200, "min_samples_leaf": 20},
    {"max_iter": 100, "learning_rate": 0.03, "max_leaf_nodes": 15, "min_samples_leaf": 40},
    {"max_iter": 100, "learning_rate": 0.03, "max_leaf_nodes": 7, "min_samples_leaf": 40},
    {"max_iter": 150, "learning_rate": 0.02, "max_leaf_nodes": 4, "min_samples_leaf": 80},
)
LOGISTIC_WEIGHTS = (0.0, 0.5)  # the logistic regression's share of the blended score


class CampaignModel:
    """The response model's trees blended with a logistic regression, then Platt-calibrated.

    A few thousand rows are few for trees; a linear model on log-scaled counts ranks differently, and their
    average ranked the calibration campaigns better than either (docs/benchmarks.md). ``fit`` trains both
    on the training campaigns and the calibration on the later ones, like ResponseModel."""

    def __init__(self, logistic_weight=0.5, logistic_c=0.1, **tree_params):
        self.logistic_weight = logistic_weight
        self.logistic_c = logistic_c
        self.tree_params = tree_params

    def fit(self, X, y, X_calibration, y_calibration):
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from .model import _Platt

        self.trees_ = ResponseModel(calibration="platt", **self.tree_params).fit(X, y, X_calibration, y_calibration)
        # counts and days spread over orders of magnitude: the linear model reads their logarithm
        self.logged_ = [c for c in X.columns if not c.startswith("demo_") and float(np.nanmax(X[c])) > 5]
        if self.logistic_weight > 0:
            self.logistic_ = make_pipeline(
                SimpleImputer(), StandardScaler(), LogisticRegression(C=self.logistic_c, max_iter=3000)
            ).fit(self._logged(X), y)
        self.calibrator_ = _Platt().fit(self.predict_raw(X_calibration), y_calibration)
        return self

    def _logged(self, X):
        X = X.copy()
        X[self.logged_] = np.log1p(np.clip(X[self.logged_].to_numpy(np.float64), 0, None))
        return X

    def predict_raw(self, X):
        raw = self.trees_.predict_raw(X)
        if self.logistic_weight > 0:
            raw = (1 - self.logistic_weight) * raw + self.logistic_weight * self.logistic_.predict_proba(
                self._logged(X)
            )[:, 1]
        return raw

    def predict_proba(self, X):
        return np.clip(self.calibrator_.predict(self.predict_raw(X)), 0.0, 1.0)


def _campaign_model(X, y, X_cal, y_cal, params):
    from sklearn.metrics import roc_auc_score

    candidates = (
        [params]
        if params
        else [{**trees, "logistic_weight": weight} for weight in LOGISTIC_WEIGHTS for trees in CAMPAIGN_CANDIDATES]
    )
    best = None
    for candidate in candidates:
        model = CampaignModel(**candidate).fit(X, y, X_cal, y_cal)
        auc = roc_auc_score(y_cal, model.predict_raw(X_cal))
        if best is None or auc > best[0]:
            best = (auc, model, {"calibration": "platt", **candidate, "calibration_auc": float(auc)})
    return best[1], best[2]
