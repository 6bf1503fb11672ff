"""Cost of the faithful explanations (recommender/ml/explain.py) per recipient, on the database's purchases.

    DEBUG=1 DATABASE_URL=... python bench/explain_cost.py [--model tifuknn] [--recipients 200]

Fits the model on every purchase, then explains each of the first N customers' top 4 new items (one
batched pass each) and prints the mean seconds per recipient, and what a million recipients would take.
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
from recommender.ml.explain import removal_reasons  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tifuknn")
    parser.add_argument("--recipients", type=int, default=200)
    args = parser.parse_args()
    data = purchase_orders_load()
    context = {"timestamps": data.timestamps, "orders": data.orders}
    model = make_model(args.model).fit(data.histories, n_items=len(data.item_ids), **context)
    histories = data.histories[: args.recipients]
    part = {name: values[: args.recipients] for name, values in context.items()}
    tops, _ = model.recommend(histories, k=4, **part)
    started = time.perf_counter()
    named = 0
    for row, (history, items) in enumerate(zip(histories, tops)):
        row_context = {name: values[row] for name, values in part.items()}
        positions, _ = removal_reasons(model, history, items, row_context)
        named += int((positions >= 0).sum())
    per = (time.perf_counter() - started) / len(histories)
    result = {
        "model": args.model,
        "recipients": len(histories),
        "items": int(tops.size),
        "named": named,
        "seconds_per_recipient": round(per, 4),
        "hours_per_million": round(per * 1e6 / 3600, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
