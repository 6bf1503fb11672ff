import json
import sys
import time

from django.core.management.base import BaseCommand, CommandError

from recommender.interactions import interactions_load, time_split


class Command(BaseCommand):
    help = (
        "Offline evaluation: leave-one-out on a `user item item ...` file (--sequences), or a time split "
        "of the purchases in the database (--source db); all items ranked, history removed, ties against."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sequences", help="file with one line per user: user_id item_id item_id ...")
        parser.add_argument("--source", choices=["db"], help="the purchases in the database, split by time")
        parser.add_argument("--models", default="pop,ease,transitions,deep")
        parser.add_argument("--k", default="10,20")
        parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, sequences, source, models, k, json_path, seed, **options):
        from recommender.ml import MODEL_NAMES, cli

        if bool(sequences) == bool(source):
            raise CommandError("give exactly one of --sequences PATH or --source db")
        names = [name.strip() for name in models.split(",") if name.strip()]
        unknown = sorted(set(names) - set(MODEL_NAMES))
        if unknown:
            raise CommandError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
        try:
            ks = tuple(int(value) for value in k.split(","))
        except ValueError as exc:
            raise CommandError(f"--k {k!r}: expected comma-separated whole numbers") from exc
        if sequences:
            argv = ["--sequences", sequences, "--models", ",".join(names), "--k", k, "--seed", str(seed)]
            try:
                cli.main(argv + (["--json", json_path] if json_path else []))
            except (OSError, ValueError) as exc:
                raise CommandError(f"{sequences}: {exc}") from exc
            return
        started = time.perf_counter()
        data = interactions_load(types=["purchase"])
        if not data.n_events:
            raise CommandError("no purchases in the database; import some first (make run loads the demo)")
        split = time_split(data)
        if not len(split.eval_users):
            raise CommandError("no customer has purchases before and a new item in both evaluation windows")
        self.stderr.write(
            f"{len(data.histories)} customers, {len(data.item_ids)} items, {data.n_events} purchases; "
            f"evaluating {len(split.eval_users)} customers with a new item in both windows"
        )
        results = {
            "models": cli.evaluate_models(names, split, ks=ks, seed=seed, log=self.stderr.write),
            "split": "time (cut-offs at the 80% and 90% quantiles of purchase times)",
            "evaluated_users": len(split.eval_users),
            "skipped_users": int(split.skipped_users),
            "n_items": int(split.n_items),
        }
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        self.stdout.write(cli.format_table(results, ks))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)
        sys.stdout.flush()
