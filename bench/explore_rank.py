"""Who wins each kind of item, at V and at T: the deep model's rankings of each kind beside TIFU-KNN.

    DEBUG=1 DATABASE_URL=... python bench/explore_rank.py [--json bench/out/explore-rank.json]

`recsys_eval --task next-basket` chooses how the deep model ranks each kind of item (`repeat_rank`,
`explore_rank`: by itself, or in TIFU-KNN's order) by that kind's recall@10 at V, and runs only that
choice at T. This fits the deep model's and TIFU-KNN's settings chosen at V (docs/benchmarks.md) at V and
at T and prints, at both, the deep model with each pair of rankings (total recall@10, recall_rep@10,
explore-only recall@10) and TIFU-KNN: that the "tifuknn" rankings reproduce TIFU-KNN's own figures, and
whether the winner at V is the winner at T. What it prints at T is reported, never chosen by.
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

# the settings chosen at V by `recsys_eval --task next-basket --models ptop,tifuknn,deep` (docs/benchmarks.md)
DEEP = {"basket_learning_rate": 3e-3, "basket_epochs": 7, "explore_neighbours": 0, "seed": 0, "verbose": False}
TIFU = {"group_size": 3, "within_decay": 0.9, "group_decay": 0.9, "n_neighbors": 100, "alpha": 0.7}


def measured(model, split):
    result = nb.evaluate_next_basket(model, split, (10,))
    return {
        "recall@10": result["recall@10"],
        "recall_rep@10": result["recall_rep@10"],
        "explore_recall@10": result["explore"]["recall@10"],
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--json")
    args = parser.parse_args()
    data = purchase_orders_load()
    test_cutoff, validation_cutoff = nb.default_cutoffs(data.timestamps)
    out = {}
    for name, cutoff in (("V", validation_cutoff), ("T", test_cutoff)):
        split = nb.next_basket_split(data.histories, data.timestamps, data.orders, cutoff, n_items=len(data.item_ids))
        started = time.perf_counter()
        # fitted once: the rankings change only its scores
        deep = nb.fit_on(make_model("deep", explore_rank="tifuknn", repeat_rank="tifuknn", **DEEP), split)
        rows = {}
        for repeat in ("model", "tifuknn"):
            for explore in ("model", "tifuknn"):
                deep.repeat_rank, deep.explore_rank = repeat, explore
                rows[f"deep, repeat_rank {repeat}, explore_rank {explore}"] = measured(deep, split)
        rows["tifuknn"] = measured(nb.fit_on(make_model("tifuknn", **TIFU), split), split)
        out[name] = {"households": len(split.users), "models": rows, "seconds": round(time.perf_counter() - started)}
        for model, row in rows.items():
            figures = ", ".join(f"{key} {value:.4f}" for key, value in row.items())
            print(f"{name} ({len(split.users)} households) {model}: {figures}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
