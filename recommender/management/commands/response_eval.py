import json
import time
from datetime import UTC, date, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

DAY = 86400.0


class Command(BaseCommand):
    help = (
        "Backtest the response model on the shop's own data: the category window (who buys in a category in "
        "the 14 days after a cut-off; beside the 90-day purchase count and the current proxy) and the shop's "
        "past coupon campaigns (who redeems; the 8 that start last are the test)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", choices=["db"], required=True, help="db: the events in the database")
        parser.add_argument(
            "--cutoff",
            help="the category window's cut-off, YYYY-MM-DD (default: the Monday 8 weeks before the last purchase)",
        )
        parser.add_argument(
            "--categories",
            help='category path prefixes separated by ";" (default: the 20 bought by the most households)',
        )
        parser.add_argument("--json", dest="json_path", help="write the results as JSON here")
        parser.add_argument("--windows", type=int, default=6, help="training windows before the calibration window")
        parser.add_argument(
            "--no-recommender",
            action="store_true",
            help="leave out the current proxy's baseline (the recommender's mass)",
        )
        parser.add_argument("--skip-campaigns", action="store_true", help="only the category window")

    def handle(self, *args, source, cutoff, categories, json_path, windows, no_recommender, skip_campaigns, **options):
        from recommender.ml.response.evaluation import campaigns_evaluate, category_window_evaluate
        from recommender.response import external_campaigns, shop_data_load

        started = time.perf_counter()
        data = shop_data_load()
        if not len(data.shop.purchases.day):
            raise CommandError("no purchase with an item in the database: nothing to evaluate")
        cut = _cutoff(cutoff, data.last_day)
        prefixes = [p.strip() for p in categories.split(";") if p.strip()] if categories else None
        item_sets = data.category_masks(prefixes=prefixes, before=cut)
        empty = [name for name, mask in item_sets.items() if not mask.any()]
        if empty:
            raise CommandError(f"--categories: no item's category path starts with {', '.join(map(repr, empty))}")
        self.stderr.write(f"category window at {_iso(cut)}: {len(item_sets)} categories")
        try:
            results = {
                "category_window": category_window_evaluate(
                    data.shop, cutoff=cut, item_sets=item_sets, windows=windows, with_mass=not no_recommender
                )
            }
        except ValueError as error:
            raise CommandError(str(error)) from error
        results["category_window"]["setup"]["cutoff_date"] = _iso(cut)
        if not skip_campaigns:
            self.stderr.write(f"category window done ({time.perf_counter() - started:.0f} s); campaigns")
            campaigns, redemptions = external_campaigns(data)
            if len(campaigns) < 9:
                results["campaigns"] = {"skipped": f"{len(campaigns)} campaigns with dates; the task needs 9 or more"}
            else:
                results["campaigns"] = campaigns_evaluate(
                    data.shop, campaigns=campaigns, redemptions=redemptions, data_end=data.last_day
                )
        results["total_seconds"] = round(time.perf_counter() - started, 1)
        self.stdout.write(format_report(results))
        if json_path:
            with open(json_path, "w", encoding="utf-8") as handle:
                json.dump(results, handle, indent=2)


def _cutoff(text, last_day):
    if text:
        try:
            day = date.fromisoformat(text)
        except ValueError as error:
            raise CommandError(f"--cutoff: {text!r} is not a date (YYYY-MM-DD)") from error
    else:
        last = datetime.fromtimestamp(last_day * DAY, tz=UTC).date() - timedelta(weeks=8)
        day = last - timedelta(days=last.weekday())
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() / DAY


def _iso(day):
    return datetime.fromtimestamp(day * DAY, tz=UTC).date().isoformat()


def _fmt(value, digits=3):
    return "-" if value is None else f"{value:.{digits}f}"


def format_report(results):
    """Plain-text tables: the category window (model, baselines, per category), then the campaigns."""
    window = results["category_window"]
    setup = window["setup"]
    lines = [
        f"Category window at {setup['cutoff_date']}, {setup['days']} days; {setup['customers']:,} customers, "
        f"trained on {len(setup['train_cutoffs'])} windows ({setup['train_rows']:,} rows), calibrated on the next",
        "",
        f"{'':<34}{'AUC':>7}{'AP':>7}{'pred/act':>10}{'mean cat AUC':>14}",
        f"{'response model':<34}{_fmt(window['pooled']['auc']):>7}{_fmt(window['pooled']['ap']):>7}"
        f"{_fmt(window['pooled']['pred_over_actual']):>10}{_fmt(window['mean_category_auc']):>14}",
    ]
    for name, entry in window["baselines"].items():
        lines.append(
            f"{name:<34}{_fmt(entry['auc']):>7}{_fmt(entry['ap']):>7}{_fmt(entry['pred_over_actual']):>10}"
            f"{_fmt(entry['mean_category_auc']):>14}"
        )
    lines += ["", f"{'category':<44}{'n buy':>7}{'AUC':>7}{'AP':>7}{'pred/act':>10}{'pooled map':>12}"]
    for name, entry in window["per_category"].items():
        lines.append(
            f"{name[:43]:<44}{entry['actual']:>7}{_fmt(entry['auc']):>7}{_fmt(entry['ap']):>7}"
            f"{_fmt(entry['pred_over_actual']):>10}{_fmt(entry.get('pred_over_actual_pooled_map')):>12}"
        )
    outside = window.get("categories_outside_0.9_1.1", [])
    lines.append(f"{len(outside)} of {len(window['per_category'])} categories outside pred/act 0.9-1.1")
    campaigns = results.get("campaigns")
    if campaigns and "pooled" in campaigns:
        pooled = campaigns["pooled"]
        lines += [
            "",
            f"Coupon campaigns (test: {', '.join(campaigns['setup']['test_campaigns'])}; "
            f"trained on {len(campaigns['setup']['train_campaigns'])}, calibrated on "
            f"{len(campaigns['setup']['calibration_campaigns'])})",
            f"pooled over the test campaigns inside the data: AUC {_fmt(pooled.get('auc'))}, "
            f"AP {_fmt(pooled.get('ap'))}, "
            f"pred/act {_fmt(pooled.get('pred_over_actual'))}",
            f"pooled over all test campaigns: AUC {_fmt(campaigns['pooled_all_test']['auc'])}",
            f"{'campaign':<10}{'targeted':>10}{'actual':>8}{'predicted':>11}{'AUC':>7}  inside the data",
        ]
        for campaign_id, entry in campaigns["per_campaign"].items():
            lines.append(
                f"{campaign_id:<10}{entry['targeted']:>10}{entry['actual']:>8}{entry['predicted']:>11.1f}"
                f"{_fmt(entry['auc']):>7}  {'yes' if entry['inside_data'] else 'no'}"
            )
    elif campaigns:
        lines += ["", f"Coupon campaigns: {campaigns['skipped']}"]
    lines += ["", f"{results['total_seconds']} s"]
    return "\n".join(lines)
