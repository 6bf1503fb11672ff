"""Command line: fit and evaluate models on a ``user item item ...`` file (run as ``python -m recommender.ml``).

    python -m recommender.ml --sequences PATH --models pop,ease,transitions,deep \
        [--k 10,20] [--json OUT] [--seed 0] [--attributes ITEM2ATTR.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from .data import leave_one_out, read_item_attributes, read_sequences
from .evaluation import fit_and_evaluate, sized_model
from .registry import MODEL_NAMES, model_spec


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m recommender.ml", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequences", required=True, help="file with lines 'user item item ...'")
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated model names")
    parser.add_argument("--k", default="10,20", help="comma-separated cut-offs")
    parser.add_argument("--json", default=None, help="write the results JSON here")
    parser.add_argument("--seed", type=int, default=0, help="seed of the deep model")
    parser.add_argument(
        "--attributes",
        default=None,
        help="optional item -> attribute ids JSON (deep model)",
    )
    return parser.parse_args(argv)


def format_table(results, ks):
    """Plain-text table: model, HR/NDCG per k, coverage@10, train seconds."""
    header = ["model"] + [f"{m}@{k}" for k in ks for m in ("HR", "NDCG")] + ["cov@10", "train_s"]
    lines = ["  ".join(f"{h:>11}" for h in header)]
    for name, row in results["models"].items():
        cells = [name] + [f"{row[f'{m}@{k}']:.4f}" for k in ks for m in ("hr", "ndcg")]
        cells += [f"{row['coverage@10']:.4f}", f"{row['train_seconds']:.1f}"]
        lines.append("  ".join(f"{c:>11}" for c in cells))
    return "\n".join(lines)


def main(argv=None):
    """Run the evaluation and print the table (progress goes to stderr)."""
    args = parse_args(argv)
    ks = tuple(int(k) for k in args.k.split(","))
    start = time.perf_counter()
    data = read_sequences(args.sequences)
    split = leave_one_out(data.sequences, data.n_items)
    print(
        f"{len(data.sequences)} users, {data.n_items} items; evaluating {len(split.eval_users)} users "
        f"({split.skipped_users} with < 3 items skipped)",
        file=sys.stderr,
    )
    attributes = read_item_attributes(args.attributes, data.item_ids) if args.attributes else None
    names = args.models.split(",")
    results = {"models": evaluate_models(names, split, ks=ks, seed=args.seed, item_features=attributes)}
    results.update(evaluated_users=len(split.eval_users), skipped_users=int(split.skipped_users), n_items=split.n_items)
    results["total_seconds"] = round(time.perf_counter() - start, 1)
    print(format_table(results, ks))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)
    return results


def evaluate_models(names, split, *, ks, seed=0, item_features=None, log=None):
    """{name: test metrics} of each named model fitted on the split (``fit_and_evaluate``).

    A model whose defaults carry a seed gets ``seed``; one that stops early also reports its best
    validation NDCG@10 and its number of epochs. ``log`` takes progress lines (default: stderr).
    """
    log = log or (lambda line: print(line, file=sys.stderr, flush=True))
    out = {}
    for name in names:
        log(f"fitting {name} ...")
        seeded = {"seed": seed} if "seed" in model_spec(name).defaults else {}
        model, parameters = sized_model(name, split, seeded)
        if parameters != seeded:
            log(f"{name} model on this catalogue: {parameters}")
        measured = fit_and_evaluate(model, split, ks=ks, on=("test",), item_features=item_features)
        out[name] = {**measured["test"], "train_seconds": measured["train_seconds"]}
        if hasattr(model, "best_val_ndcg_"):
            out[name].update({"best_val_ndcg@10": model.best_val_ndcg_, "epochs": len(model.history_)})
    return out


if __name__ == "__main__":
    main()
