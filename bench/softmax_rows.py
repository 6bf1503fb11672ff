"""The deep model's softmax over the catalogue for one scored chunk: float32 in place against float64 blocks.

    python bench/softmax_rows.py [--rows 512] [--items 100000] [--repeats 5] [--json OUT]

Times recommender.ml.deep_repeat._softmax_rows (float32, in place, BLOCK_ROWS rows at a time) on a chunk of
random logits (the shape generation scores: 512 customers x 100,000 items at scale 1) beside the reference it
replaced, measured in the same run: a float64 copy of BLOCK_ROWS rows at a time, rounded back to float32. Each
is the median of --repeats runs on a fresh copy of the same logits, on one thread. Also prints the largest
relative and absolute differences between the two and whether every row's top 20 items are the same. Prints
one JSON object and, with --json, writes it.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from recommender.ml.deep_repeat import BLOCK_ROWS, _softmax_rows  # noqa: E402


def float64_blocks(logits):
    """The softmax before (main at 45cc6de): a float64 copy of BLOCK_ROWS rows at a time."""
    for a in range(0, len(logits), BLOCK_ROWS):
        block = logits[a : a + BLOCK_ROWS].astype(np.float64)
        block -= block.max(axis=1, keepdims=True)
        np.exp(block, out=block)
        block /= block.sum(axis=1, keepdims=True)
        logits[a : a + BLOCK_ROWS] = block
    return logits


def median_seconds(function, logits, repeats):
    times = []
    for _ in range(repeats):
        copy = logits.copy()
        started = time.perf_counter()
        function(copy)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def measure(rows=512, items=100_000, repeats=5):
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((rows, items)) * rng.choice([0.5, 3.0, 10.0], size=(rows, 1))).astype(np.float32)
    reference = median_seconds(float64_blocks, logits, repeats)
    current = median_seconds(_softmax_rows, logits, repeats)
    a, b = float64_blocks(logits.copy()), _softmax_rows(logits.copy())
    top_a, top_b = np.argsort(-a, axis=1)[:, :20], np.argsort(-b, axis=1)[:, :20]
    return {
        "shape": [rows, items],
        "block_rows": BLOCK_ROWS,
        "float32_in_place_s": round(current, 4),
        "float64_blocks_s": round(reference, 4),
        "speedup": round(reference / current, 2),
        # over probabilities of at least 1e-30 (below, float32's subnormals hold fewer digits in either)
        "max_relative_difference": float(np.max((np.abs(a - b) / a)[a >= 1e-30])),
        "max_absolute_difference": float(np.max(np.abs(a - b))),
        "same_top_20": bool((top_a == top_b).all()),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    out = measure(args.rows, args.items, args.repeats)
    print(json.dumps(out, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
