"""Kevin Hillstrom's MineThatData e-mail test: features, reading the file, and the evaluation.

64,000 customers who bought in the last twelve months were split at random into three thirds: a
Womens e-mail, a Mens e-mail, no e-mail. The evaluation keeps Womens vs none (treatment = Womens),
outcome = a visit to the site within two weeks, as scikit-uplift's Hillstrom tutorial does.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .metrics import (
    qini_auc_score,
    random_qini_auc_score,
    random_uplift_at_k,
    random_uplift_auc_score,
    random_uplift_curve_area,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve_area,
)
from .models import fit_best, outcome_strata

FEATURE_COLUMNS = ("recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie", "channel")
NUMERIC_COLUMNS = ("recency", "history", "mens", "womens", "newbie", "visit")
CATEGORIES = {"zip_code": ("Rural", "Surburban", "Urban"), "channel": ("Multichannel", "Phone", "Web")}
TREATED, CONTROL = "Womens E-Mail", "No E-Mail"


class HillstromError(ValueError):
    """The file or its rows cannot be evaluated; the message says why."""


def hillstrom_features(frame):
    """Numeric feature frame of the Hillstrom customers (one row per row of ``frame``).

    recency, history, mens, womens, newbie as numbers; history_segment as its ordinal (the leading
    "1) ", "2) " ... of "1) $0 - $100"); zip_code and channel one-hot over their known values, so
    any subset of rows gets the same columns (an unknown value is all zeros).
    """
    features = frame[["recency", "history", "mens", "womens", "newbie"]].astype(np.float64)
    segment = frame["history_segment"].astype(str).str.extract(r"^\s*(\d+)\)", expand=False)
    features["history_segment"] = pd.to_numeric(segment, errors="coerce")
    for column, values in CATEGORIES.items():
        for value in values:
            features[f"{column}={value}"] = (frame[column] == value).astype(np.float64)
    return features


def hillstrom_read(path):
    """The Hillstrom CSV as a frame, checked for the columns the evaluation needs."""
    if not os.path.isfile(path):
        raise HillstromError(f"{path}: no such file")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise HillstromError(f"{path}: not a readable CSV file ({exc})") from exc
    missing = [c for c in (*FEATURE_COLUMNS, "segment", "visit") if c not in frame.columns]
    if missing:
        raise HillstromError(f"{path}: missing column(s) {', '.join(missing)}")
    not_numeric = [c for c in NUMERIC_COLUMNS if pd.to_numeric(frame[c], errors="coerce").isna().any()]
    if not_numeric:
        raise HillstromError(f"{path}: column(s) {', '.join(not_numeric)} hold empty or non-numeric values")
    if not frame["visit"].isin((0, 1)).all():
        raise HillstromError(f"{path}: column visit must hold only 0 and 1")
    return frame


def hillstrom_evaluate(frame, *, seed=42):
    """Train on a random half (``fit_best``), report on the other half; a JSON-ready dict.

    The halves are drawn with ``seed``, stratified on treatment and outcome; the same seed drives
    the validation folds inside the training half. The test half is used for nothing but the report.
    """
    frame = frame[frame["segment"].isin((TREATED, CONTROL))]
    for group in (TREATED, CONTROL):
        if not (frame["segment"] == group).any():
            raise HillstromError(f'no rows with segment "{group}": the evaluation compares it with the other group')
    X = hillstrom_features(frame).to_numpy()
    y = frame["visit"].to_numpy(dtype=int)
    treatment = (frame["segment"] == TREATED).to_numpy(dtype=int)
    train, test = train_test_split(
        np.arange(len(y)), test_size=0.5, random_state=seed, stratify=outcome_strata(y, treatment)
    )
    started = time.perf_counter()
    selection = fit_best(X[train], y[train], treatment[train], k=0.3, random_state=seed)
    fit_seconds = time.perf_counter() - started
    uplift = selection.model.predict_uplift(X[test])
    y_test, t_test = y[test], treatment[test]
    return {
        "uplift_at_30": uplift_at_k(y_test, uplift, t_test, k=0.3),
        "qini": qini_auc_score(y_test, uplift, t_test),
        "auuc": uplift_auc_score(y_test, uplift, t_test),
        "random_auuc": random_uplift_auc_score(y_test, t_test),
        "random_qini": random_qini_auc_score(y_test, t_test),
        "random_uplift_at_30": random_uplift_at_k(y_test, t_test),
        "uplift_curve_area": uplift_curve_area(y_test, uplift, t_test),
        "random_uplift_curve_area": random_uplift_curve_area(y_test, t_test),
        "chosen": selection.chosen,
        "candidates": selection.candidates,
        "seed": seed,
        "n_train": int(len(train)),
        "n_test": int(len(test)),
        "fit_seconds": round(fit_seconds, 1),
    }
