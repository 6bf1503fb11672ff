"""Compatibility alias: the uplift models moved to ``recommender.ml.uplift`` (Django-free, with the rest of ml).

Uplift models trained before the move are joblib pickles that name their classes by the old module path
(``recommender.uplift.models.TwoModelUplift``). Unpickling one imports this package, which points the old
module names at the new modules, so those files still load. New code imports ``recommender.ml.uplift``.
"""

import sys

from recommender.ml.uplift import hillstrom, metrics, models

for _module in (hillstrom, metrics, models):
    sys.modules[f"{__name__}.{_module.__name__.rpartition('.')[2]}"] = _module
