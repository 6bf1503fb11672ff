"""The response model: a gradient-boosted classifier, calibrated on a later window than it trained on."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def training_cutoffs(cutoff, *, days=14, windows=6, step=None):
    """The cut-offs a model used at ``cutoff`` may learn from: (train cut-offs, calibration cut-off).

    The calibration window is the last one that ends by ``cutoff`` ([cutoff - days, cutoff)); the training
    windows are the ``windows`` before it, ``step`` days apart (default ``days``). Every label window
    [c, c + days) ends at or before ``cutoff``: no label is read from the period the model is tested on.
    """
    step = step or days
    calibration = float(cutoff) - days
    train = [calibration - days - k * step for k in range(windows)]
    return sorted(train), calibration


class ResponseModel:
    """P(response | features): scikit-learn's HistGradientBoostingClassifier, then a calibration map.

    ``fit(X, y, X_calibration, y_calibration)`` trains the classifier on the first pair and fits the
    calibration (``"isotonic"`` or ``"platt"``) of its scores on the second, a later window the classifier
    never saw, so the probabilities match the response rate of data the model did not learn from.
    """

    def __init__(
        self,
        calibration="isotonic",
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=31,
        min_samples_leaf=50,
        l2_regularization=1.0,
        random_state=0,
    ):
        self.calibration = calibration
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.random_state = random_state

    def get_params(self, deep=True):
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        for name, value in params.items():
            if name not in self._param_names():
                raise ValueError(f"unknown parameter {name!r}")
            setattr(self, name, value)
        return self

    @staticmethod
    def _param_names():
        return (
            "calibration",
            "max_iter",
            "learning_rate",
            "max_leaf_nodes",
            "min_samples_leaf",
            "l2_regularization",
            "random_state",
        )

    def fit(self, X, y, X_calibration, y_calibration):
        """Fit the classifier on (X, y) and its calibration on the later window; returns self."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        if self.calibration not in ("isotonic", "platt"):
            raise ValueError(f"calibration must be 'isotonic' or 'platt', not {self.calibration!r}")
        y, y_calibration = np.asarray(y, np.int64), np.asarray(y_calibration, np.int64)
        if len(np.unique(y)) < 2 or len(np.unique(y_calibration)) < 2:
            raise ValueError("the training and the calibration windows both need responders and non-responders")
        self.feature_names_ = list(getattr(X, "columns", range(np.shape(X)[1])))
        self.classifier_ = HistGradientBoostingClassifier(
            max_iter=self.max_iter,
            learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes,
            min_samples_leaf=self.min_samples_leaf,
            l2_regularization=self.l2_regularization,
            early_stopping=False,
            random_state=self.random_state,
        ).fit(self._matrix(X), y)
        self.calibrator_ = _calibrator(self.calibration).fit(self._raw(X_calibration), y_calibration)
        self.training_rate_ = float(y.mean())
        self.calibration_rate_ = float(y_calibration.mean())
        return self

    def predict_proba(self, X):
        """Calibrated probability of a response, one per row (a 1-d array)."""
        self._check_fitted()
        return np.clip(self.calibrator_.predict(self._raw(X)), 0.0, 1.0)

    def predict_raw(self, X):
        """The classifier's own probability, before calibration."""
        self._check_fitted()
        return self.classifier_.predict_proba(self._matrix(X))[:, 1]

    def _raw(self, X):
        return self.classifier_.predict_proba(self._matrix(X))[:, 1]

    def _matrix(self, X):
        if hasattr(X, "columns"):
            if hasattr(self, "classifier_") and list(X.columns) != self.feature_names_:
                missing = sorted(set(self.feature_names_) - set(X.columns))
                if missing:
                    raise ValueError(f"features missing: {', '.join(missing)}")
                X = X[self.feature_names_]
            return X.to_numpy(np.float64)
        return np.asarray(X, np.float64)

    def _check_fitted(self):
        if not hasattr(self, "classifier_"):
            raise RuntimeError("the response model is not fitted")

    def save(self, path):
        """Write the fitted model to one joblib file (scikit-learn estimators pickle)."""
        import joblib

        self._check_fitted()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)
        return path

    @classmethod
    def load(cls, path):
        """Read a model written by ``save`` (same library versions; only this code writes these files)."""
        import joblib

        model = joblib.load(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path} does not hold a {cls.__name__}")
        return model


SET_PRIOR = 100.0  # pseudo-responses that pull a set's level correction toward none (the pooled map)


def set_level_shift(predicted, actual, prior=SET_PRIOR):
    """The log-odds shift that moves one item set's calibrated probabilities to its own level.

    ``predicted``: the model's calibrated probabilities for the set's rows in the calibration window;
    ``actual``: their labels. The pooled calibration map gets the sum over all sets right, but a set whose
    response rate sits above or below what its features suggest keeps that bias; this shift makes the
    set's predicted sum in the calibration window (A + prior) / (P + prior) x P, with A the set's
    responders and P its predicted sum, so a set with few responders moves little. Returns a float (0.0:
    no shift)."""
    predicted = np.asarray(predicted, np.float64)
    total, responders = float(predicted.sum()), float(np.asarray(actual).sum())
    if not len(predicted) or total <= 0:
        return 0.0
    target = min(total * (responders + prior) / (total + prior), len(predicted) * (1 - 1e-6))
    low, high = -10.0, 10.0
    for _ in range(60):  # the shifted sum grows with the shift: bisect
        middle = (low + high) / 2
        if level_shifted(predicted, middle).sum() < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def level_shifted(p, shift):
    """Probabilities with ``shift`` added to their log-odds (0 and 1 unchanged)."""
    p = np.asarray(p, np.float64)
    if shift == 0.0:
        return p
    # 0 and 1 stay where they are (their log-odds are infinite); the clip in _logit would move them
    return np.where((p <= 0) | (p >= 1), p, 1.0 / (1.0 + np.exp(-(_logit(p) + shift))))


class _Platt:
    """A logistic map of the classifier's log-odds (Platt scaling)."""

    def fit(self, scores, y):
        from sklearn.linear_model import LogisticRegression

        self.model_ = LogisticRegression(C=1e6).fit(_logit(scores)[:, None], y)
        return self

    def predict(self, scores):
        return self.model_.predict_proba(_logit(scores)[:, None])[:, 1]


def _calibrator(kind):
    if kind == "platt":
        return _Platt()
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")


def _logit(p):
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))
