"""The response model: P(a customer buys at least one of an item set within a window after a cut-off).

Django-free like the rest of recommender/ml: features.py (customer x item-set features from purchases
before a cut-off, and the labels after it), model.py (a calibrated gradient-boosted classifier and the
cut-offs it may learn from), training.py (training rows over past windows), evaluation.py (the backtests
of ``manage.py response_eval``). See docs/ARCHITECTURE.md, "The response model".
"""

from .features import CutoffFeatures, Purchases, response_labels
from .model import ResponseModel, training_cutoffs
from .training import Shop, response_model_fit, set_window_rows

__all__ = [
    "CutoffFeatures",
    "Purchases",
    "ResponseModel",
    "Shop",
    "response_labels",
    "response_model_fit",
    "set_window_rows",
    "training_cutoffs",
]
