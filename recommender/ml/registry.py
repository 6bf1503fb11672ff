"""The table of models: every recommender this package offers, in one place.

Each entry names the model (the name a ModelVersion stores and the command line takes), its class, the
label people see, the parameters a new version starts from, and what its ``fit`` makes use of. The
Django side derives its choices and defaults from ``MODELS``; nothing else lists the models.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

from .deep_features import catalogue_parameters


@dataclass(frozen=True)
class ModelSpec:
    """One row of the table. The class is imported on first use, so reading the table stays light."""

    name: str
    module: str  # inside recommender.ml
    class_name: str
    label: str
    defaults: dict = field(default_factory=dict)  # what a new version starts from
    uses_validation: bool = False  # fit() takes the validation targets (early stopping) and reports progress
    uses_context: bool = False  # fit() takes event types, timestamps and item features
    sized: object = None  # sized(histories=, n_items=, parameters=) -> parameters fitted to the catalogue
    uses_orders: bool = False  # fit() and score() take each event's order number (``orders``, baskets.py)
    # The small grid the next-basket evaluation tunes at its validation cut-off (next_basket.py); every
    # combination is tried, so grids stay comparable in size across models.
    grid: dict = field(default_factory=dict)
    # The parameter holding a number of epochs the next-basket tuning chooses at V (fit's epoch_callback
    # measures each epoch there), then freezes for the run at T; None for models without epochs.
    epochs_param: str = None
    # Parameters that change only how a fitted model ranks one kind of item ({name: (kind, [values])},
    # kind "repeat": the items a customer bought before, "explore": the others; a model fitted with the
    # last value of each can score with any, the attribute set): the next-basket tuning chooses each after
    # the grid by its kind's recall@10 at V (recall_rep@10; the explore-only recall@10), and a production
    # version by the same at its own V (recommender/services.py), so each kind of item is served by the
    # ranking that wins it.
    rank_choice: dict = field(default_factory=dict)

    def model_class(self):
        return getattr(import_module(f"{__package__}.{self.module}"), self.class_name)

    def make(self, **params):
        """An unfitted estimator with these parameters (the class defaults for the others)."""
        return self.model_class()(**params)


MODELS = (
    ModelSpec(
        "pop",
        "popularity",
        "PopularityRecommender",
        "popularity (time-decayed)",
        grid={"half_life": [5.0, 50.0, 500.0, None]},
    ),
    ModelSpec(
        "ease",
        "ease",
        "EASERecommender",
        "EASE (item-item regression)",
        grid={"lam": [50.0, 200.0, 500.0, 2000.0], "max_items": [5000]},
    ),
    ModelSpec(
        "transitions",
        "transitions",
        "TransitionRecommender",
        "item-to-item transitions",
        grid={"n_last": [1, 3, 10], "decay": [0.5, 0.9]},
    ),
    ModelSpec(
        "deep",
        "deep_repeat",
        "RepeatAwareDeepRecommender",
        "deep sequential (self-attention)",  # the label of the choices in migrations; on orders: deep_repeat.py
        # Chosen on validation targets only (docs/benchmarks.md); silent in a worker. Fitted with orders
        # (the next-basket task) it is the repeat/explore mixture of deep_repeat.py, its epochs chosen at V.
        # basket_epochs: the setting chosen at V on the Complete Journey (learning rate 3e-3, the class's
        # default, 7 epochs, no neighbour input), what a production version on orders trains
        defaults={"seed": 0, "verbose": False, "basket_epochs": 7},
        uses_validation=True,
        uses_context=True,
        sized=catalogue_parameters,
        uses_orders=True,
        # up to 8 epochs, each measured at V (the best one is kept; 4, the former grid's largest, was chosen
        # there), without and with the explore part's TIFU-KNN neighbour input (docs/benchmarks.md)
        grid={"basket_learning_rate": [1e-3, 3e-3], "basket_epochs": [8], "explore_neighbours": [0, 100]},
        epochs_param="basket_epochs",
        # each kind ranked by the deep model or by TIFU-KNN, whichever wins it at V
        rank_choice={
            "repeat_rank": ("repeat", ["model", "tifuknn"]),
            "explore_rank": ("explore", ["model", "tifuknn"]),
        },
    ),
    ModelSpec(
        "gtop",
        "topfreq",
        "GTopFreqRecommender",
        "G-TopFreq (popular in recent orders)",
        uses_context=True,
        uses_orders=True,
        grid={"weeks": [1, 2, 4, 8]},
    ),
    ModelSpec(
        "ptop",
        "topfreq",
        "PTopFreqRecommender",
        "P-TopFreq (the customer's most frequent items)",
        uses_context=True,
        uses_orders=True,
    ),
    ModelSpec(
        "tifuknn",
        "tifuknn",
        "TIFUKNNRecommender",
        "TIFU-KNN (time-decayed personal frequencies + neighbours)",
        uses_context=True,
        uses_orders=True,
        grid={
            "group_size": [3, 7],
            "within_decay": [0.9],
            "group_decay": [0.7, 0.9],
            "n_neighbors": [100, 300],
            "alpha": [0.7, 0.9],
        },
    ),
)
MODEL_NAMES = tuple(spec.name for spec in MODELS)
_BY_NAME = {spec.name: spec for spec in MODELS}
_BY_CLASS = {spec.class_name: spec for spec in MODELS}
# the deep model's class before it became repeat-aware: its instances and saved versions are the deep model's
# sequential mode, which RepeatAwareDeepRecommender loads unchanged
_BY_CLASS["DeepSequentialRecommender"] = _BY_NAME["deep"]


def model_spec(name):
    """The table's entry for a model name; ValueError naming the choices for an unknown one."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return _BY_NAME[name]


def spec_of(model):
    """The table's entry for a model instance (by its class)."""
    return _BY_CLASS[type(model).__name__]


def make_model(name, **params):
    """Build an unfitted estimator by name (one of MODEL_NAMES)."""
    return model_spec(name).make(**params)


def load(directory):
    """Restore a model saved with ``model.save(directory)`` (class read from config.json)."""
    config = json.loads((Path(directory) / "config.json").read_text())
    return _BY_CLASS[config["class"]].model_class().load(directory)
