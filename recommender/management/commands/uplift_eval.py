import json
import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = (
        "Offline evaluation of the uplift model on Kevin Hillstrom's e-mail test (Womens e-mail vs none, "
        "outcome visit): train on a random half, report uplift@30%, Qini and AUUC on the other half."
    )

    def add_arguments(self, parser):
        parser.add_argument("--hillstrom", required=True, help="the Hillstrom CSV file")
        parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
        parser.add_argument("--seed", type=int, default=42, help="seed of the train/test split and the folds")

    def handle(self, *args, hillstrom, json_path, seed, **options):
        from recommender.ml.uplift import hillstrom_evaluate, hillstrom_read

        started = time.perf_counter()
        try:
            results = hillstrom_evaluate(hillstrom_read(hillstrom), seed=seed)
        except ValueError as exc:  # HillstromError, or a split without responders in a group
            raise CommandError(str(exc)) from exc
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        self.stdout.write(format_report(results))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)


def format_report(results):
    """Plain-text tables: validation scores of every candidate, then the test half."""
    lines = [
        f"Hillstrom, Womens E-Mail vs No E-Mail, outcome visit; seed {results['seed']}: "
        f"{results['n_train']:,} customers to train, {results['n_test']:,} to test",
        "",
        f"{'validation (folds of the training half)':<42}{'qini':>8}{'auuc':>8}{'uplift@30%':>12}",
    ]
    for name, scores in results["candidates"].items():
        label = f"{name} (chosen)" if name == results["chosen"] else name
        lines.append(f"  {label:<40}{scores['qini']:>8.4f}{scores['auuc']:>8.4f}{scores['uplift_at_k']:>12.4f}")
    rows = [
        ("uplift@30%", "uplift_at_30", "random_uplift_at_30"),
        ("Qini coefficient", "qini", "random_qini"),
        ("AUUC (normalised)", "auuc", "random_auuc"),
        ("uplift curve, mean height", "uplift_curve_area", "random_uplift_curve_area"),
    ]
    lines += ["", f"{'test half':<42}{'model':>8}{'random targeting (expected)':>30}"]
    for label, key, random_key in rows:
        lines.append(f"  {label:<40}{results[key]:>8.4f}{results[random_key]:>30.4f}")
    lines += ["", f"fit {results['fit_seconds']:.1f} s, total {results['total_seconds']:.1f} s"]
    return "\n".join(lines)
