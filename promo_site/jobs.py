"""Long jobs: one lifecycle for every row a worker claims and works on for minutes or hours.

A file import (shop.ImportRun), a model training (recommender.ModelVersion), an uplift training
(campaigns.UpliftModel) and, once it adopts it, a batch's generation (campaigns.Batch) share it:

    queued ──claim──► running ──finish──► done
                         │ ▲
                progress │ │ (the worker's report; its time is the heartbeat)
                         ▼
                       failed   an exception, recorded as "TypeName: message"; or the sweeper, when the
                                worker has been silent longer than the kind's `silent_after`

Each model keeps its own status names (an import runs, a model version trains); a `JobLifecycle` maps them
and holds the kind's silence period and its audit hook. Every transition is a conditional UPDATE
(`WHERE status = <the state it leaves>`): 0 rows means another worker, the sweeper or a user got there first,
and nothing is written. The audit hook runs in the transition's transaction, only when a row changed.
"""

import logging
import secrets
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection, models, transaction
from django.db.models import DateTimeField, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

log = logging.getLogger(__name__)

# What the audit hook is told: the transition that just happened.
CLAIMED, FINISHED, FAILED = "claimed", "finished", "failed"


class Job(models.Model):
    """The columns every long job has. A subclass adds its status (with its own names) and its results."""

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    progress = models.JSONField(default=dict, blank=True, help_text="the worker's last report")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="when the worker last reported")
    worker = models.CharField(
        max_length=32, blank=True, editable=False, help_text="the claim of the worker that runs it (a random token)"
    )
    error = models.TextField(blank=True)

    class Meta:
        abstract = True


def exception_message(exc: BaseException) -> str:
    """`TypeName: message`, or the type's name alone when the exception says nothing more."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class JobOutcome:
    """What `failures_recorded` saw: `error` is the message recorded on the job, '' when the body succeeded."""

    error: str = ""

    @property
    def failed(self):
        return bool(self.error)


# audit(job_id, transition, note): writes the model's own audit row (ModelEvent, BatchEvent).
AuditHook = Callable[[int, str, str], None]


@dataclass(frozen=True)
class JobLifecycle:
    """One kind of long job: its model, its status names, how long a silent worker is trusted, its audit."""

    model: type[models.Model]
    queued: str
    running: str
    done: str
    failed: str
    # A running job whose last sign of life (heartbeat, else start, else creation) is older than this was
    # lost by its worker. Longer than the longest stretch the worker can go without reporting.
    silent_after: timedelta
    # What the loss means for this kind, after "The worker stopped ...": e.g. "Nothing was stored."
    after_loss: str = ""
    audit: AuditHook | None = None
    # A kind whose queued and running states are one (a batch being generated resumes where a lost worker
    # stopped): another worker may claim it only when no worker holds it or its worker has been silent
    # this long; until then a redelivered task does nothing beside the live one.
    takeover_after: timedelta | None = None
    # A kind whose status has a transition service of its own (a batch's batch_transition, which writes its
    # audit row) finishes and fails through it: transition(job_id, FINISHED or FAILED, note, token, fields)
    # returns whether the job moved. The audit hook is then not called for those two.
    transition: Callable[[int, str, str, str | None, dict], bool] | None = None

    def _rows(self, job_id, status, token=None):
        rows = self.model.objects.filter(id=job_id, status=status)
        return rows if token is None else rows.filter(worker=token)

    def _audit(self, job_id, transition, note=""):
        if self.audit is not None:
            self.audit(job_id, transition, note)

    def claim(self, job_id, *, progress=None) -> str:
        """queued -> running. Returns the claim's token, which the worker may pass to progress, finish and
        fail so that only it writes there; '' when someone else has it (or it already ran): do nothing."""
        now, token = timezone.now(), secrets.token_hex(8)
        rows = self._rows(job_id, self.queued)
        if self.queued == self.running:
            silent = Q(heartbeat_at__lt=now - (self.takeover_after or self.silent_after)) | Q(heartbeat_at=None)
            rows = rows.filter(Q(worker="") | silent)
        with transaction.atomic():
            # A kind whose queued and running states are one keeps its first start.
            claimed = rows.update(
                status=self.running,
                started_at=Coalesce("started_at", Value(now, output_field=DateTimeField())),
                heartbeat_at=now,
                progress=progress or {},
                worker=token,
            )
            if claimed:
                self._audit(job_id, CLAIMED)
        return token if claimed else ""

    def progress(self, job_id, report=None, *, token=None, **fields) -> bool:
        """Record the worker's report (and any columns of the job's own); the time is the heartbeat.

        False when the job is no longer running (swept, cancelled) or, given the claim's token, another
        worker took it over: its worker should stop.
        """
        values = {"heartbeat_at": timezone.now(), **fields}
        if report is not None:
            values["progress"] = report
        return bool(self._rows(job_id, self.running, token).update(**values))

    def finish(self, job_id, *, token=None, **fields) -> bool:
        """running -> done, with the job's results; False (nothing written) when it is no longer running."""
        if self.transition is not None:
            return self.transition(job_id, FINISHED, "", token, {"finished_at": timezone.now(), **fields})
        with transaction.atomic():
            finished = self._rows(job_id, self.running, token).update(
                status=self.done, finished_at=timezone.now(), **fields
            )
            if finished:
                self._audit(job_id, FINISHED)
        return bool(finished)

    def fail(self, job_id, error: BaseException | str, *, token=None, **fields) -> bool:
        """running -> failed with the error (`TypeName: message` for an exception); False when not running."""
        message = error if isinstance(error, str) else exception_message(error)
        if self.transition is not None:
            fields = {"error": message, "finished_at": timezone.now(), **fields}
            return self.transition(job_id, FAILED, message, token, fields)
        with transaction.atomic():
            failed = self._rows(job_id, self.running, token).update(
                status=self.failed, error=message, finished_at=timezone.now(), **fields
            )
            if failed:
                self._audit(job_id, FAILED, message)
        return bool(failed)

    def heartbeat(self, job_id, token, every=30.0):
        """Keep the job's heartbeat fresh from a background thread while the body runs, so that a step which
        reports nothing for minutes (loading a model, scoring a whole audience, a summary) still shows a live
        worker and `takeover_after` can stay short (see heartbeat_thread)."""
        rows = self._rows(job_id, self.running, token)
        return heartbeat_thread(
            lambda: rows.update(heartbeat_at=timezone.now()), every, f"{self.model._meta.label} {job_id}"
        )

    @contextmanager
    def failures_recorded(self, job_id, *, expected=(), reraise=False, **fields):
        """Fail the job with any exception its body raises; yields a JobOutcome to check afterwards.

        An `expected` exception (a bad file, too little data: its message is the whole story for the user)
        is recorded by its message alone; any other as `TypeName: message`, and logged with its traceback.
        Re-raise unexpected ones (`reraise=True`) when the task's retry policy or Celery's record needs it.
        `fields` are written with the failure (e.g. progress={"phase": "failed"}).
        """
        outcome = JobOutcome()
        try:
            yield outcome
        except expected as exc:
            outcome.error = str(exc) or exception_message(exc)
            self.fail(job_id, outcome.error, **fields)
        except Exception as exc:
            log.exception("%s %s failed", self.model._meta.label, job_id)
            outcome.error = exception_message(exc)
            self.fail(job_id, outcome.error, **fields)
            if reraise:
                raise

    @property
    def lost_message(self):
        minutes = round(self.silent_after.total_seconds() / 60)
        return (
            f"The worker stopped (killed, out of memory or restarted): no report from it for {minutes} minutes. "
            f"{self.after_loss}"
        ).strip()

    def sweep(self) -> list[int]:
        """Fail the running jobs whose worker has been silent for `silent_after`; returns their ids.

        A row locked by another transaction is skipped: a worker holds it (an import writes its progress
        inside its one transaction), so it is alive even if the heartbeat it wrote cannot be seen yet.
        """
        cutoff = timezone.now() - self.silent_after
        silent = (
            self.model.objects.filter(status=self.running)
            .annotate(last_sign=Coalesce("heartbeat_at", "started_at", "created_at"))
            .filter(last_sign__lt=cutoff)
        )
        with transaction.atomic():
            ids = list(silent.select_for_update(skip_locked=True).values_list("id", flat=True))
            return [job_id for job_id in ids if self.fail(job_id, self.lost_message)]


@contextmanager
def heartbeat_thread(write, every, name):
    """Call `write()` every `every` seconds from a thread of its own while the body runs, until it returns 0
    (the claim it refreshes is no longer this worker's) or the body ends. The thread has its own database
    connection; an error in it is logged and never kills the work."""
    stop = threading.Event()

    def beat():
        try:
            while not stop.wait(every) and write():
                pass
        except Exception:  # a heartbeat that cannot be written must not kill the work
            log.exception("%s: the heartbeat thread stopped", name)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every)
