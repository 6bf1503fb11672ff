"""Pure-Python recommenders (NumPy; the deep model uses TensorFlow/Keras lazily).

Importing this package never imports TensorFlow or Django. Use
``evaluation.make_model(name, **params)`` to build a model and ``load(dir)``
to restore any saved one.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["MODEL_NAMES", "load", "make_model"]

MODEL_NAMES = ("pop", "ease", "transitions", "deep")

_CLASSES = {
    "PopularityRecommender": ("popularity", "PopularityRecommender"),
    "EASERecommender": ("ease", "EASERecommender"),
    "TransitionRecommender": ("transitions", "TransitionRecommender"),
    "DeepSequentialRecommender": ("deep", "DeepSequentialRecommender"),
}


def make_model(name, **params):
    """Build an unfitted estimator: pop, ease, transitions or deep."""
    from .evaluation import make_model as _make

    return _make(name, **params)


def load(directory):
    """Restore a model saved with ``model.save(directory)`` (class read from config.json)."""
    from importlib import import_module

    config = json.loads((Path(directory) / "config.json").read_text())
    module, cls = _CLASSES[config["class"]]
    return getattr(import_module(f".{module}", __name__), cls).load(directory)
