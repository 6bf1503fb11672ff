"""The outbox: follow-up work is written in the transaction of the change that causes it, then dispatched.

A service that causes follow-up work (a requested batch is to be generated, a sending batch's next slice,
stored purchases are to be attributed, a requested training) calls `outbox_enqueue` inside its
transaction. The row commits or rolls back with the change. After the commit the task is sent to the
broker; a broker that is down then leaves the row for `outbox_dispatch` (beat, every minute), so the work
is never lost and a committed request never turns into an error. Tasks are named by their registered name,
so services never import tasks (no services <-> tasks import circle).

Dispatch locks the row (FOR UPDATE SKIP LOCKED) around the broker call and marks it dispatched in the same
transaction: two dispatchers never send one row twice. A crash between the broker's acceptance and the
commit sends it again; every task is idempotent (they claim their rows with conditional updates).
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from promo_site.models import OutboxTask

log = logging.getLogger(__name__)
# A row the on-commit dispatch should have sent: older than this, the periodic dispatcher takes it.
DISPATCH_GRACE = timedelta(seconds=30)
KEEP_DISPATCHED = timedelta(days=7)
# Errors that say the broker is unreachable (rather than that one row is wrong): the run stops at the first.
BROKER_ERRORS = (BrokerOperationalError, ConnectionError, OSError, TimeoutError)


def outbox_enqueue(task, *args, countdown=0.0, **kwargs):
    """Record `task(*args, **kwargs)` to run `countdown` seconds from now, once the current transaction
    commits (at once outside a transaction). Returns the outbox row's id."""
    row = OutboxTask.objects.create(
        task=task, args=list(args), kwargs=kwargs, not_before=timezone.now() + timedelta(seconds=countdown)
    )
    transaction.on_commit(lambda: outbox_dispatch(ids=[row.id]))
    return row.id


def outbox_dispatch(*, ids=None, limit=500):
    """Send pending rows to the broker (the given ids, or every row past DISPATCH_GRACE). Returns how many
    went; a broker error is recorded on the row and left for the next run, never raised."""
    sent = 0
    pending = OutboxTask.objects.filter(dispatched_at__isnull=True)
    pending = (
        pending.filter(id__in=ids)
        if ids is not None
        else pending.filter(created_at__lt=timezone.now() - DISPATCH_GRACE)
    )
    for row_id in list(pending.order_by("id").values_list("id", flat=True)[:limit]):
        try:
            sent += _dispatch_one(row_id)
        except Exception as error:  # recorded on the row, which waits for the next run
            log.warning("outbox: could not dispatch #%s (%s); it will be retried", row_id, error)
            OutboxTask.objects.filter(id=row_id).update(attempts=F("attempts") + 1, last_error=str(error)[:2000])
            if isinstance(error, BROKER_ERRORS):
                break  # every other row would meet the same broker
    return sent


def _dispatch_one(row_id):
    with transaction.atomic():
        row = OutboxTask.objects.select_for_update(skip_locked=True).filter(id=row_id, dispatched_at=None).first()
        if row is None:
            return 0  # another dispatcher has it, or sent it already
        # An ETA only for work that is not due yet: a worker takes a task with an ETA at once and holds it past
        # its prefetch limit until then, so due work sent with one piles up in whichever worker fetched first
        # while the others stay idle (Celery's "ETA and countdown"); without one it goes to the next free worker.
        now = timezone.now()
        eta = row.not_before if row.not_before > now else None
        _task(row.task).apply_async(args=row.args, kwargs=row.kwargs, eta=eta)
        row.dispatched_at = now
        row.save(update_fields=["dispatched_at"])
    return 1


def _task(name):
    from promo_site.celery import app

    if name not in app.tasks:
        app.loader.import_default_modules()  # autodiscovery: registers every app's tasks in this process
    return app.tasks[name]


def outbox_prune():
    """Forget rows dispatched more than KEEP_DISPATCHED ago."""
    return OutboxTask.objects.filter(dispatched_at__lt=timezone.now() - KEEP_DISPATCHED).delete()[0]
