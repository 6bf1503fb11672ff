from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import OperationalError

from campaigns.services.generation import batch_generate


@shared_task(queue="default", acks_late=True, time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60, max_retries=0)
def generate_batch(batch_id):
    """Generate one batch; a redelivery after a lost worker resumes where the rows end."""
    batch_generate(batch_id=batch_id)


@shared_task(queue="send", acks_late=True, time_limit=300, max_retries=3, default_retry_delay=30)
def send_test_messages(batch_id, recipient_ids, seeds):
    from campaigns.services.testsend import test_messages_send

    test_messages_send(batch_id=batch_id, recipient_ids=recipient_ids, seeds=seeds)


# A slice of sending (SEND_SLICE_SECONDS) plus one chunk's wait for tokens and its provider call. The
# sweeper's SEND_CLAIM_STALE_MINUTES outlasts this hard limit (checked in settings), so it never settles
# a claim that a live task is still working on.
SEND_TIME_LIMIT = settings.SEND_SLICE_SECONDS + 240


@shared_task(
    queue="send",
    acks_late=True,
    time_limit=SEND_TIME_LIMIT,
    soft_time_limit=SEND_TIME_LIMIT - 30,
    autoretry_for=(OperationalError,),  # a database that went away for a moment; claims make a retry safe
    max_retries=5,
    retry_backoff=True,
)
def send_batch_messages(batch_id, run):
    """Send a batch's due messages for one slice of time, then queue the next slice (delivery.py)."""
    from campaigns.services.delivery import batch_send_slice, dispatch

    try:
        countdown = batch_send_slice(batch_id=batch_id, run=run)
    except SoftTimeLimitExceeded:
        countdown = 0.0  # the messages of the interrupted call stay claimed: the sweeper settles them
    if countdown is not None:
        dispatch(batch_id, run, countdown)


@shared_task(queue="send", acks_late=True, time_limit=600, soft_time_limit=570, max_retries=0)
def sweep_stuck_messages():
    """Beat, every 5 minutes: settle messages stuck in claimed, restart lost senders (delivery.py)."""
    from campaigns.services.delivery import messages_sweep

    messages_sweep()
