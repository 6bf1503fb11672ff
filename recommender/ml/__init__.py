"""Pure-Python recommenders (NumPy; the deep model uses TensorFlow/Keras lazily).

Importing this package never imports TensorFlow or Django. The models are listed once, in
``registry.MODELS``; ``make_model(name, **params)`` builds one and ``load(dir)`` restores any saved one.
"""

from .registry import MODEL_NAMES, MODELS, load, make_model, model_spec

__all__ = ["MODEL_NAMES", "MODELS", "load", "make_model", "model_spec"]
