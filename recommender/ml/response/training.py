"""Training rows for the response model: item sets x customers at past cut-offs, labelled by what followed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .features import CutoffFeatures, Purchases, response_labels
from .model import SET_PRIOR, ResponseModel, level_shifted, set_level_shift, training_cutoffs

# Rows (customer x item set) are about 45 float64 features, 360 bytes each; every customer of every window gave a
# shop of 100,000 customers 18M training rows (30 sets x 6 windows) and took over 20 GB. Past these bounds a
# window's customers are a random sample (the same at every run): the rows' memory and the fit's time stop
# growing with the shop. The Complete Journey's 2,500 households stay whole (450,000 rows).
TRAIN_ROWS = 2_000_000  # all training windows together
CALIBRATION_ROWS = 500_000  # the calibration window
LEVEL_CUSTOMERS = 200_000  # customers a set's level shift is measured on (production and backtest alike)


@dataclass(frozen=True)
class Shop:
    """Everything the features read, Django-free: the purchase log and what is known of items and customers."""

    purchases: Purchases
    item_group: np.ndarray | None = None  # int per item (its category), -1 for none
    demographics: np.ndarray | None = None  # (n_customers, k) float, NaN unknown
    demographic_names: tuple = ()

    def at(self, cutoff, days=14, popularity=None):
        """The feature maker at one cut-off (purchases before it only); ``days``: the label window's length;
        ``popularity``: the shop's counts of a set's buyers where this log holds only some customers
        (CutoffFeatures)."""
        return CutoffFeatures(
            self.purchases,
            cutoff=cutoff,
            days=days,
            item_group=self.item_group,
            demographics=self.demographics,
            demographic_names=self.demographic_names,
            popularity=popularity,
        )

    def buyers_before(self, cutoff):
        """Every customer with a purchase before the cut-off (the population a window scores)."""
        customer = self.purchases.customer[self.purchases.day < cutoff]
        # ascending, as np.unique gives them; a count per customer instead of a sort of every purchase
        return np.flatnonzero(np.bincount(customer, minlength=self.purchases.n_customers)).astype(np.int64)


def customers_sample(customers, most, *, seed):
    """At most ``most`` of ``customers`` (ascending), drawn at random with ``seed``: the same ones at every run.
    All of them when they are no more (``most`` None: no bound)."""
    customers = np.asarray(customers, np.int64)
    if most is None or len(customers) <= most:
        return customers
    return np.sort(np.random.default_rng(seed).choice(customers, size=max(int(most), 1), replace=False))


def set_window_rows(shop, *, cutoff, item_sets, days=14, customers=None, mass=None, maker=None, most_customers=None):
    """Features and labels of every (customer, item set) at one cut-off.

    ``item_sets``: {name: bool mask over items}. ``customers``: default every customer with a purchase before
    the cut-off. ``mass``: optional {name: per-customer recommender mass}. ``maker``: ``shop.at(cutoff, days)``
    when the caller keeps one (it reads the whole log once). ``most_customers``: past this many buyers, a
    random sample of them (seeded by the cut-off's day; not with ``customers`` or ``mass`` given). Returns
    (X, y, set names per row, customers per row)."""
    if customers is None:
        customers = customers_sample(shop.buyers_before(cutoff), most_customers, seed=int(np.floor(cutoff)))
    else:
        customers = np.asarray(customers, np.int64)
    maker = shop.at(cutoff, days) if maker is None else maker
    frames, labels, names = [], [], []
    for name, mask in item_sets.items():
        frames.append(maker.features(mask, customers, recommender_mass=None if mass is None else mass[name]))
        labels.append(response_labels(shop.purchases, cutoff=cutoff, item_set=mask, customers=customers, days=days))
        names.append(np.full(len(customers), name, dtype=object))
    X = pd.concat(frames, ignore_index=True)
    return X, np.concatenate(labels), np.concatenate(names), np.tile(customers, len(item_sets))


def response_model_fit(
    shop,
    *,
    cutoff,
    item_sets,
    days=14,
    windows=6,
    params=None,
    train_rows=TRAIN_ROWS,
    calibration_rows=CALIBRATION_ROWS,
):
    """Train on ``windows`` past windows before ``cutoff`` and calibrate on the last one (training_cutoffs).

    Every label window ends at or before ``cutoff``. The features are the ones production computes (no
    recommender mass: generation has none to give). A window holds every buyer before its cut-off, or a
    random sample of them where the windows would hold more than ``train_rows`` rows together (the
    calibration window: ``calibration_rows``). Returns (model, report)."""
    train_at, calibrate_at = training_cutoffs(cutoff, days=days, windows=windows)
    sets = max(len(item_sets), 1)
    per_window = max(train_rows // (sets * len(train_at)), 1)
    parts = [
        set_window_rows(shop, cutoff=c, item_sets=item_sets, days=days, most_customers=per_window) for c in train_at
    ]
    X = pd.concat([p[0] for p in parts], ignore_index=True)
    y = np.concatenate([p[1] for p in parts])
    del parts
    X_cal, y_cal, _names, _customers = set_window_rows(
        shop, cutoff=calibrate_at, item_sets=item_sets, days=days, most_customers=max(calibration_rows // sets, 1)
    )
    model = ResponseModel(**(params or {})).fit(X, y, X_cal, y_cal)
    report = {
        "train_cutoffs": train_at,
        "calibration_cutoff": calibrate_at,
        "train_rows": len(y),
        "train_rate": float(y.mean()),
        "calibration_rows": len(y_cal),
        "calibration_rate": float(y_cal.mean()),
        "customers_per_window": per_window,  # the bound; a window with fewer buyers keeps them all
    }
    return model, report


def set_level_shifts(model, shop, *, cutoff, item_sets, days=14, prior=SET_PRIOR, maker=None, customers=None):
    """{set name: log-odds shift} from the last label window that ends by ``cutoff``, [cutoff - days, cutoff):
    the model's calibrated probabilities there against what followed (model.set_level_shift). Production
    and the backtest both call this, at the cut-off they predict from. ``maker``: ``shop.at(cutoff - days,
    days)``, when the caller keeps one for several calls; ``customers``: the window's sample of buyers, the
    same (level_customers), when it keeps that too."""
    if customers is None:
        customers = level_customers(shop, cutoff - days)
    X, y, names, _customers = set_window_rows(
        shop, cutoff=cutoff - days, item_sets=item_sets, days=days, maker=maker, customers=customers
    )
    p = model.predict_proba(X)
    return {name: set_level_shift(p[names == name], y[names == name], prior) for name in item_sets}


def level_customers(shop, cutoff):
    """The buyers before ``cutoff`` that a set's level shift is measured on: all of them, or past
    LEVEL_CUSTOMERS a sample seeded by the cut-off's day (what set_window_rows draws)."""
    return customers_sample(shop.buyers_before(cutoff), LEVEL_CUSTOMERS, seed=int(np.floor(cutoff)))


def set_window_predict(model, shop, *, cutoff, item_sets, days=14, customers=None, prior=SET_PRIOR):
    """p(response) of every (customer, item set) at ``cutoff``: the model's calibrated probability moved by
    the set's level shift (``prior=None``: the pooled map alone). Returns (X, p, set names per row,
    customers per row)."""
    X, _y, names, rows = set_window_rows(shop, cutoff=cutoff, item_sets=item_sets, days=days, customers=customers)
    p = model.predict_proba(X)
    if prior is not None:
        shifts = set_level_shifts(model, shop, cutoff=cutoff, item_sets=item_sets, days=days, prior=prior)
        for name, shift in shifts.items():
            p[names == name] = level_shifted(p[names == name], shift)
    return X, p, names, rows
