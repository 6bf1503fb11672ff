"""Uplift models: who responds *because* of a promotion message, not who responds anyway.

Pure scikit-learn / NumPy / pandas, no Django, so the same code serves the command line, the tests
and later Celery work. ``metrics`` matches scikit-uplift's metrics (implemented here, not imported);
``models`` holds the two estimators (T-learner, class transformation) and ``fit_best``, which picks
one on validation splits; ``hillstrom`` reads and evaluates Kevin Hillstrom's e-mail test.
"""

from .hillstrom import HillstromError, hillstrom_evaluate, hillstrom_features, hillstrom_read
from .metrics import (
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    random_curve,
    random_qini_auc_score,
    random_uplift_at_k,
    random_uplift_auc_score,
    random_uplift_curve_area,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
    uplift_curve_area,
    uplift_scores,
)
from .models import CANDIDATES, ClassTransformationUplift, TwoModelUplift, UpliftSelection, fit_best

__all__ = [
    "CANDIDATES",
    "ClassTransformationUplift",
    "HillstromError",
    "TwoModelUplift",
    "UpliftSelection",
    "fit_best",
    "hillstrom_evaluate",
    "hillstrom_features",
    "hillstrom_read",
    "perfect_qini_curve",
    "perfect_uplift_curve",
    "qini_auc_score",
    "qini_curve",
    "random_curve",
    "random_qini_auc_score",
    "random_uplift_at_k",
    "random_uplift_auc_score",
    "random_uplift_curve_area",
    "uplift_at_k",
    "uplift_auc_score",
    "uplift_curve",
    "uplift_curve_area",
    "uplift_scores",
]
