import json
import resource
import sys
import time
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from recommender.interactions import interactions_load, purchase_orders_load, time_split

NEXT_BASKET_MODELS = "gtop,ptop,tifuknn,ease,pop,transitions"


class Command(BaseCommand):
    help = (
        "Offline evaluation: leave-one-out on a `user item item ...` file (--sequences), or a time split "
        "of the purchases in the database (--source db); all items ranked, history removed, ties against."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sequences", help="file with one line per user: user_id item_id item_id ...")
        parser.add_argument("--source", choices=["db"], help="the purchases in the database, split by time")
        parser.add_argument(
            "--task",
            choices=["next-item", "next-basket"],
            default="next-item",
            help="with --source db: the first new item after a cut-off (next-item), or the next order's "
            "items, repeat and new, at a cut-off T tuned at V = T - 28 days (next-basket; docs/benchmarks.md)",
        )
        parser.add_argument(
            "--cutoff",
            help="next-basket: the test cut-off T as YYYY-MM-DD (UTC midnight); default: the last purchase's "
            "date minus 28 days",
        )
        parser.add_argument(
            "--models",
            help=f"comma-separated model names (default: pop,ease,transitions,deep; next-basket: {NEXT_BASKET_MODELS})",
        )
        parser.add_argument("--k", default="10,20")
        parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, sequences, source, task, cutoff, models, k, json_path, seed, **options):
        from recommender.ml import MODEL_NAMES, cli

        if bool(sequences) == bool(source):
            raise CommandError("give exactly one of --sequences PATH or --source db")
        if task == "next-basket" and not source:
            raise CommandError("--task next-basket reads the orders in the database: give --source db")
        if cutoff and task != "next-basket":
            raise CommandError("--cutoff is for --task next-basket")
        models = models or (NEXT_BASKET_MODELS if task == "next-basket" else "pop,ease,transitions,deep")
        names = [name.strip() for name in models.split(",") if name.strip()]
        unknown = sorted(set(names) - set(MODEL_NAMES))
        if unknown:
            raise CommandError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
        try:
            ks = tuple(int(value) for value in k.split(","))
        except ValueError as exc:
            raise CommandError(f"--k {k!r}: expected comma-separated whole numbers") from exc
        if task == "next-basket":
            self._next_basket(names, ks, cutoff, json_path, seed)
            return
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

    def _next_basket(self, names, ks, cutoff, json_path, seed):
        from recommender.ml import next_basket as nb

        test_cutoff = _parse_cutoff(cutoff)
        started = time.perf_counter()
        data = purchase_orders_load()
        if not data.n_events:
            raise CommandError("no purchases in the database; import some first (make run loads the demo)")
        default_test, _ = nb.default_cutoffs(data.timestamps)
        test_cutoff = default_test if test_cutoff is None else test_cutoff
        validation_cutoff = test_cutoff - nb.HORIZON_DAYS * nb.DAY
        splits = {
            name: nb.next_basket_split(data.histories, data.timestamps, data.orders, at, n_items=len(data.item_ids))
            for name, at in (("validation", validation_cutoff), ("test", test_cutoff))
        }
        for name, split in splits.items():
            if not len(split.users):
                raise CommandError(
                    f"no household has 2 orders before the {name} cut-off {_day(split.cutoff)} and one in the "
                    f"{nb.HORIZON_DAYS} days after it; choose another --cutoff"
                )
        test = splits["test"]
        self.stderr.write(
            f"{len(data.histories)} customers, {len(data.item_ids)} items, {data.n_events} purchases; "
            f"T = {_day(test.cutoff)}: {len(test.users)} households, V = {_day(validation_cutoff)}: "
            f"{len(splits['validation'].users)} households"
        )
        results = {
            "households": len(test.users),
            "cutoff": _day(test.cutoff),
            "validation_cutoff": _day(validation_cutoff),
            "validation_households": len(splits["validation"].users),
            "n_items": len(data.item_ids),
            "rankable_items": int(test.rankable.sum()),
            "tuned_on": f"validation {nb.TUNED_ON}",
            "models": {},
        }
        per_customer = {}
        for name in names:
            self.stderr.write(f"tuning {name} at V, then one run at T ...")
            per_customer[name] = {}
            results["models"][name] = nb.tune_and_test(
                name,
                splits["validation"],
                test,
                ks=ks,
                seed=seed,
                log=_timed(self.stderr.write),
                per_customer=per_customer[name],
            )
            # the process's peak resident memory so far (Linux: kilobytes), so a model's is at most this
            results["models"][name]["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        baselines = {name: row for name, row in results["models"].items() if name != "deep"}
        if "deep" in names and baselines:
            results["models"]["deep"].update(nb.versus_best(per_customer, "deep", baselines, seed=seed))
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        self.stdout.write(nb.format_table(results, ks))
        if "deep" in names and baselines:
            self.stdout.write(nb.format_versus("deep", results["models"]["deep"]))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)


def _timed(write):
    """The log with the wall-clock time in front: a long tuning shows it is alive (every epoch at least)."""

    def timed(text):
        write(f"[{datetime.now(tz=UTC).strftime('%H:%M:%S')}] {text}")

    return timed


def _parse_cutoff(text):
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise CommandError(f"--cutoff {text!r}: expected a date as YYYY-MM-DD") from exc
    return day.timestamp()


def _day(seconds):
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%d")
