"""Importing event files (CSV or Parquet): the service behind `import_events` and uploads in the admin."""

import csv
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from promo_site.jobs import JobLifecycle
from shop.models import EventType, ImportRun
from shop.services.event_rows import FIELDS, RowChecker
from shop.services.event_store import event_writer
from shop.services.tables import ImportFileError, table_lines_holding, table_open
from shop.signals import events_high_water, events_stored_announce

REPORT_HEADER = ["line", "column", "value", "reason"]


@dataclass
class ImportSummary:
    rows_total: int
    rows_stored: int
    rows_duplicate: int
    rows_rejected: int
    customers_created: int
    items_created: int
    report_path: Path | None


def mapping_resolve(*, columns, mapping=None, event_type=None):
    """Field -> column: explicit --map entries first, else a column named like the field.

    Raises ImportFileError naming every mapped column the file lacks.
    """
    mapping = dict(mapping or {})
    unknown_fields = sorted(set(mapping) - set(FIELDS))
    if unknown_fields:
        raise ImportFileError(f"unknown field(s) in --map: {', '.join(unknown_fields)} (fields: {', '.join(FIELDS)})")
    for name in FIELDS:
        if name not in mapping and name in columns:
            mapping[name] = name
    missing = [f"'{col}' (for {name})" for name, col in mapping.items() if col not in columns]
    if missing:
        raise ImportFileError(f"column(s) {', '.join(missing)} not in the file; its columns are: {', '.join(columns)}")
    needed = ["customer", "occurred_at"] + ([] if event_type else ["type"])
    absent = [name for name in needed if name not in mapping]
    if absent:
        hint = " (or give --type)" if "type" in absent else ""
        raise ImportFileError(
            f"no column for {', '.join(absent)}{hint}; map one with --map FIELD=COLUMN. "
            f"The file's columns are: {', '.join(columns)}"
        )
    if event_type and event_type not in EventType.values:
        raise ImportFileError(f"--type {event_type!r} is not an event type ({', '.join(EventType.values)})")
    return mapping


def events_import_file(*, path, mapping=None, event_type=None, source=None, report_path=None, progress=None):
    """Import events from a CSV or Parquet file, all or nothing for the good rows.

    Bad rows go to the report and the rest are stored in one transaction;
    a file that cannot be read at all raises before anything is written.
    `progress(rows_done, rows_total_or_None)` is called after each chunk.
    """
    table = table_open(path)
    mapping = mapping_resolve(columns=table.columns, mapping=mapping, event_type=event_type)
    checker = RowChecker(mapping=mapping, event_type=event_type, source=source or f"file:{table.path.name}")
    report = _Report(report_path, table.path)
    total = 0
    with transaction.atomic(), event_writer(bulk_load=True) as writer:
        after_id = events_high_water()
        for lines, frame, unreadable in table.chunks(sorted(set(mapping.values()))):
            result = checker.check(frame, lines)
            writer.add(result.rows)
            report.write(unreadable + result.rejections)
            total += len(frame) + len(unreadable)
            if progress:
                progress(total, table.total_rows)
        stored = writer.finish()
        if stored.stored:
            events_stored_announce(source=checker.source, after_id=after_id, types=stored.types)
    return ImportSummary(
        rows_total=total,
        rows_stored=stored.stored,
        rows_duplicate=stored.duplicates,
        rows_rejected=report.rows_rejected,
        customers_created=stored.customers_created,
        items_created=stored.items_created,
        report_path=report.close(),
    )


class _Report:
    """The CSV of rejected rows; written only when there is something to say."""

    def __init__(self, path, source_path):
        self.path = Path(path) if path else None
        self.source_path = source_path
        self.rows_rejected = 0
        self._lines = set()
        self._handle = None
        self._writer = None

    def write(self, rejections):
        if not rejections:
            return
        if self._writer is None:
            if self.path is None:
                stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
                self.path = settings.VAR_DIR / "import-reports" / f"{self.source_path.stem}-{stamp}.csv"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("w", newline="")
            self._writer = csv.writer(self._handle)
            self._writer.writerow(REPORT_HEADER)
        rejections = sorted(rejections)
        self._writer.writerows(rejections)
        self._lines.update(line for line, *_ in rejections)
        self.rows_rejected = len(self._lines)

    def close(self):
        if self._handle:
            self._handle.close()
            return self.path
        if self.path:
            # Asked for a report: an empty one (header only) says "nothing rejected".
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("w", newline="") as handle:
                csv.writer(handle).writerow(REPORT_HEADER)
            return self.path
        return None


def import_reports_erase(*, external_id):
    """Remove from every stored import report (uploads' reports, ImportRun.report) the lines of the customer's
    rows: those whose value is the external id, and those whose row in the kept upload holds it in any field.
    Returns how many lines were removed. The run's counts stay as they were (rows_rejected included)."""
    removed = 0
    for run in ImportRun.objects.exclude(report="").order_by("id"):
        removed += _report_erase(run, external_id)
    return removed


def _report_erase(run, external_id):
    path = Path(run.report.path)
    if not path.is_file():
        return 0
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    numbered = {int(row[0]) for row in rows if row and row[0].isdigit()}
    theirs = {int(row[0]) for row in rows if len(row) > 2 and row[0].isdigit() and row[2].strip() == external_id}
    upload = Path(run.file.path) if run.file else None
    if upload is not None and upload.is_file():
        theirs |= table_lines_holding(upload, external_id, numbered - theirs)
    kept = [row for row in rows if not (row and row[0].isdigit() and int(row[0]) in theirs)]
    if len(kept) < len(rows):
        partial = path.with_name(f".{path.name}.erasing")
        with partial.open("w", newline="") as handle:
            csv.writer(handle).writerows([header, *kept])
        partial.replace(path)  # atomic: a download reads the old report or the new one
    return len(rows) - len(kept)


# An import reports after every chunk, inside its one transaction: others see neither the report nor its
# time until it commits, but the row lock that write holds tells the sweeper the import is alive (it skips
# locked rows). So the silence that counts is the claim's to the first chunk, or a worker gone: its
# transaction rolled back, nothing stored.
IMPORT_JOB = JobLifecycle(
    model=ImportRun,
    queued=ImportRun.Status.QUEUED,
    running=ImportRun.Status.RUNNING,
    done=ImportRun.Status.DONE,
    failed=ImportRun.Status.FAILED,
    silent_after=timedelta(minutes=15),
    after_loss="Nothing was stored: an import is one transaction.",
)


class ImportLost(Exception):
    """The sweeper failed this import while it ran: its rows are rolled back, never stored unrecorded."""


def import_run_execute(*, run_id):
    """Run a queued ImportRun (an upload from the admin) and record its outcome.

    A file the import cannot read fails with the reason it gives; any other error with `TypeName: message`.
    """
    if not IMPORT_JOB.claim(run_id, progress={"rows_done": 0}):
        return  # another worker has it, or it already ran
    run = ImportRun.objects.get(id=run_id)
    report_path = settings.MEDIA_ROOT / "import-reports" / f"run-{run.id}.csv"

    def progress(done, total):
        if not IMPORT_JOB.progress(run.id, {"rows_done": done, "rows_total": total}, rows_total=done):
            raise ImportLost("the import was failed by the sweeper while it ran")

    expected = (ImportFileError, ImportLost)  # the reason is all there is to say (ImportLost: already said)
    with IMPORT_JOB.failures_recorded(run.id, expected=expected), transaction.atomic():
        summary = events_import_file(
            path=run.file.path,
            mapping=run.options.get("mapping"),
            event_type=run.options.get("event_type") or None,
            source=run.options.get("source") or None,
            report_path=report_path,
            progress=progress,
        )
        # In the import's transaction: the run is done if and only if its rows are stored.
        if not IMPORT_JOB.finish(
            run.id,
            report=f"import-reports/run-{run.id}.csv" if summary.rows_rejected else "",
            progress={"rows_done": summary.rows_total, "rows_total": summary.rows_total},
            **_summary_fields(summary),
        ):
            raise ImportLost("the import was failed by the sweeper while it ran")


def _summary_fields(summary):
    return {
        "rows_total": summary.rows_total,
        "rows_stored": summary.rows_stored,
        "rows_duplicate": summary.rows_duplicate,
        "rows_rejected": summary.rows_rejected,
        "customers_created": summary.customers_created,
        "items_created": summary.items_created,
    }


def import_run_record(*, kind, source_name, options, summary, user=None):
    """Keep an audit record of an import done from the command line."""
    now = timezone.now()
    return ImportRun.objects.create(
        kind=kind,
        source_name=source_name,
        options=options,
        status=ImportRun.Status.DONE,
        started_at=now,
        finished_at=now,
        created_by=user,
        **_summary_fields(summary),
    )
