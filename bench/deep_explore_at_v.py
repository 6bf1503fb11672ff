"""The deep model's configurations measured at the validation cut-off V only (never at T), on both goals.

    DEBUG=1 DATABASE_URL=... python bench/deep_explore_at_v.py [--json bench/out/deep-at-v.json]

`recsys_eval --task next-basket` tunes each model by recall@10 at V; this fits the deep model's best
setting at V without and with the explore part's neighbour input (`explore_neighbours`) and prints both
recall@10 and the explore-only recall@10 at V, what decides between two settings tied on recall@10.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")

import django  # noqa: E402

django.setup()

from recommender.interactions import purchase_orders_load  # noqa: E402
from recommender.ml import make_model  # noqa: E402
from recommender.ml import next_basket as nb  # noqa: E402

# the best setting of each at V, from `recsys_eval --task next-basket` (docs/benchmarks.md)
SETTINGS = {
    "without neighbours": {"basket_learning_rate": 3e-3, "basket_epochs": 7, "explore_neighbours": 0},
    "with 100 neighbours": {"basket_learning_rate": 1e-3, "basket_epochs": 4, "explore_neighbours": 100},
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    data = purchase_orders_load()
    test_cutoff, _ = nb.default_cutoffs(data.timestamps)
    validation = nb.next_basket_split(
        data.histories, data.timestamps, data.orders, test_cutoff - nb.HORIZON_DAYS * nb.DAY, n_items=len(data.item_ids)
    )
    out = {"validation_households": len(validation.users), "settings": {}}
    for name, params in SETTINGS.items():
        started = time.perf_counter()
        model = nb.fit_on(make_model("deep", seed=0, verbose=False, **params), validation)
        result = nb.evaluate_next_basket(model, validation, (10,))
        row = {
            "params": params,
            "recall@10": result["recall@10"],
            "explore_recall@10": result["explore"]["recall@10"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        out["settings"][name] = row
        print(f"{name}: at V recall@10 {row['recall@10']:.4f}, explore-only recall@10 {row['explore_recall@10']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
