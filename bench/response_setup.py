"""A generation worker's response-model set-up on a large shop: seconds and peak memory.

    python bench/response_setup.py --database-url postgres://postgres@127.0.0.1:5432/me_s1 \
        --media-root /tmp/promo_bench_media_me_s1 [--json OUT]

On a shop where bench/stage_generation.py has trained and activated a version (its artifact under --media-root),
it does what a generation worker does before its first chunk's response probabilities: loads the version's
response model and the shop's items (``ResponsePredictor.of_version`` at the shop's clock), then predicts for
the first 5,000 customers for the bench campaign's three item sets (Produce, Dairy, every item), which reads
the shop's counts of a set's buyers (the last 104 days of purchases, once), the level shifts' sample of
buyers (at most 200,000, once) and the chunk's purchases, and then once more for the next 5,000 customers
(what every later chunk pays: a read of its customers' purchases, timed alone too, and their features).
Figures: seconds of each step, the process's peak and resident memory (VmHWM, VmRSS) after the load and
after the sets, and the mean probability per set (the same code gives the same numbers).
Prints one JSON object and, with --json, writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _memory_mib():
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmHWM", "VmRSS")):
                fields[line.split(":")[0]] = int(line.split()[1]) // 1024
    return fields


def measure(database_url, media_root, customers=5000):
    os.environ.setdefault("DEBUG", "1")
    os.environ["DATABASE_URL"] = database_url
    os.environ["MEDIA_ROOT"] = str(media_root)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")
    import django

    django.setup()
    import numpy as np

    from campaigns.audiences import shop_clock
    from recommender.models import ModelVersion
    from recommender.response import ResponsePredictor
    from shop.models import Customer, Item

    version = ModelVersion.objects.active().first()
    if version is None:
        raise SystemExit("no active model version: run bench/stage_generation.py on this shop first")
    out = {"model_version": version.id}
    started = time.perf_counter()
    predictor = ResponsePredictor.of_version(version, now=shop_clock())
    if predictor is None:
        raise SystemExit(f"version #{version.id} has no response model under {media_root}")
    out["load_s"] = round(time.perf_counter() - started, 1)
    out["after_load_mib"] = _memory_mib()
    ids = list(Customer.objects.order_by("id").values_list("id", flat=True)[:customers])
    sets = {
        "Produce": np.array(Item.objects.filter(category_path__startswith="Produce").values_list("id", flat=True)),
        "Dairy": np.array(Item.objects.filter(category_path__startswith="Dairy").values_list("id", flat=True)),
        "every item": np.array(Item.objects.values_list("id", flat=True)),
    }
    started = time.perf_counter()
    first = {name: predictor.predict(ids, items) for name, items in sets.items()}
    out["first_chunk_s"] = round(time.perf_counter() - started, 1)
    following = list(Customer.objects.order_by("id").values_list("id", flat=True)[customers : 2 * customers])
    started = time.perf_counter()
    predictor.prepare(following)
    out["next_chunk_read_s"] = round(time.perf_counter() - started, 2)
    for items in sets.values():
        predictor.predict(following, items)
    out["next_chunk_s"] = round(time.perf_counter() - started, 2)
    out["after_sets_mib"] = _memory_mib()
    out["mean_probability"] = {name: round(float(p.mean()), 6) for name, p in first.items()}
    out["customers_in_chunk"] = len(ids)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True, help="a shop with an active version (stage_generation.py)")
    parser.add_argument("--media-root", required=True, help="where that version's artifact lies")
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    out = measure(args.database_url, args.media_root)
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
