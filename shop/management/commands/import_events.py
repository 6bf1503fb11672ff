from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError, connection
from tqdm import tqdm

from shop.services.event_rows import FIELDS
from shop.services.imports import events_import_file, import_run_record
from shop.services.tables import ImportFileError


def parse_map(entries):
    mapping = {}
    for entry in entries:
        field, sep, column = entry.partition("=")
        if not sep or not field or not column:
            raise CommandError(f"--map {entry!r}: expected FIELD=COLUMN, FIELD one of {', '.join(FIELDS)}")
        mapping[field.strip()] = column.strip()
    return mapping


def database_failure(exc):
    """One paragraph for a database that is down or went away: the traceback says nothing more to an operator."""
    where = connection.settings_dict
    server = (where.get("HOST") or "local socket") + (f":{where['PORT']}" if where.get("PORT") else "")
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (
        f"The database {where['NAME']} on {server} failed during the import: {reason}. "
        "Nothing was stored (an import is one transaction); run it again when the database is back."
    )


class Command(BaseCommand):
    help = "Import events from a CSV or Parquet file. Bad rows go to a report; the rest are stored once."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="FIELD=COLUMN",
            help=f"which column holds a field; fields: {', '.join(FIELDS)}",
        )
        parser.add_argument("--type", dest="event_type", help="event type for files without a type column")
        parser.add_argument("--source", help="the system the events come from (default: file:<name>)")
        parser.add_argument("--report", help="CSV of rejected rows (line,column,value,reason)")

    def handle(self, *args, path, map, event_type, source, report, **options):
        mapping = parse_map(map)
        bar = None

        def progress(done, total):
            nonlocal bar
            if bar is None:
                bar = tqdm(
                    total=total, unit=" rows", unit_scale=True, desc="importing", disable=options["verbosity"] == 0
                )
            bar.update(done - bar.n)

        try:
            summary = events_import_file(
                path=path, mapping=mapping, event_type=event_type, source=source, report_path=report, progress=progress
            )
        except ImportFileError as exc:
            raise CommandError(f"{exc} Nothing was stored.") from exc
        except (OperationalError, InterfaceError) as exc:
            raise CommandError(database_failure(exc)) from exc
        finally:
            if bar is not None:
                bar.close()
        import_run_record(
            kind="events",
            source_name=path,
            summary=summary,
            options={"mapping": mapping, "event_type": event_type, "source": source},
        )
        self.stdout.write(
            f"{summary.rows_total} rows: {summary.rows_stored} stored, {summary.rows_duplicate} already there, "
            f"{summary.rows_rejected} rejected; {summary.customers_created} customers and "
            f"{summary.items_created} items created."
        )
        if summary.report_path:
            self.stdout.write(f"Report: {summary.report_path}")
