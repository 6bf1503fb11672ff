from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from campaigns.services.generation import (
    GENERATION_JOB,
    HELD,
    batch_chunk_generate,
    batch_generate,
    generations_sweep,
)
from campaigns.services.uplift_targeting import UPLIFT_TRAIN_TIME_LIMIT


@shared_task(
    bind=True,
    queue="default",
    acks_late=True,
    time_limit=settings.GENERATION_SLICE_SECONDS + 1800,  # its slice of chunks, plus planning and one chunk
    soft_time_limit=settings.GENERATION_SLICE_SECONDS + 1740,
    max_retries=None,
)
def generate_batch(self, batch_id):
    """Generate one batch; a redelivery after a lost worker resumes where the rows end. Beside a live
    worker (a redelivery after the broker's visibility timeout) it looks again in takeover_after."""
    if batch_generate(batch_id=batch_id) == HELD:
        raise self.retry(countdown=GENERATION_JOB.takeover_after.total_seconds())


# One chunk of GENERATION_CHUNK_CUSTOMERS customers: seconds of work, minutes at most on a loaded host.
@shared_task(bind=True, queue="default", acks_late=True, time_limit=1800, soft_time_limit=1740, max_retries=None)
def generate_batch_chunk(self, batch_id, number):
    """Generate chunk `number` of a batch (generation_chunks.py); beside a live worker that holds it (a
    redelivery), look again in takeover_after."""
    if batch_chunk_generate(batch_id=batch_id, number=number) == HELD:
        raise self.retry(countdown=GENERATION_JOB.takeover_after.total_seconds())


@shared_task(queue="send", acks_late=True, time_limit=300, max_retries=3, default_retry_delay=30)
def send_test_messages(batch_id, recipient_ids, seeds):
    from campaigns.services.testsend import test_messages_send

    test_messages_send(batch_id=batch_id, recipient_ids=recipient_ids, seeds=seeds)


# A database or Redis that went away for a moment (a restart, a failover): the task is tried again. The retry
# is published to the broker, which may be the Redis that is restarting: its publication is retried for about
# 40 s instead of Celery's default 0.6 s, after which the task message would be dropped (its batch then
# waits for the sweeper to restart its sender). Claims make a retry safe.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
RIDE_OUT_BROKER_RESTART = {
    "retry_policy": {"max_retries": 15, "interval_start": 0.5, "interval_step": 0.5, "interval_max": 3}
}

# A slice of sending (SEND_SLICE_SECONDS) plus one chunk's wait for tokens and its provider call (both within
# SEND_POST_DEADLINE_SECONDS of the claim), with room to spare. The sweeper may settle a claim this task still
# holds (after its post deadline): the task then posts nothing more of it and writes nothing over it.
SEND_TIME_LIMIT = settings.SEND_SLICE_SECONDS + 240


@shared_task(
    queue="send",
    acks_late=True,
    time_limit=SEND_TIME_LIMIT,
    soft_time_limit=SEND_TIME_LIMIT - 30,
    autoretry_for=TRANSIENT_ERRORS,
    retry_kwargs=RIDE_OUT_BROKER_RESTART,
    max_retries=8,
    retry_backoff=True,
    retry_backoff_max=60,
)
def send_batch_messages(batch_id, run, lane=0):
    """One of a batch's senders: send due messages for one slice of time, then queue its next slice
    (delivery.py). `lane` only tells the run's senders apart in logs."""
    from campaigns.services.delivery import batch_send_slice, sender_enqueue

    try:
        countdown = batch_send_slice(batch_id=batch_id, run=run)
    except SoftTimeLimitExceeded:
        countdown = 0.0  # the messages of the interrupted call stay claimed: the sweeper settles them
    if countdown is not None:
        sender_enqueue(batch_id, run, countdown, lane=lane)


@shared_task(queue="send", acks_late=True, time_limit=600, soft_time_limit=570, max_retries=0)
def sweep_stuck_messages():
    """Beat, every minute: settle messages stuck in claimed, restart lost senders (delivery.py)."""
    from campaigns.services.delivery import messages_sweep

    messages_sweep()


# --- measurement -------------------------------------------------------------------


@shared_task(
    queue="default",
    acks_late=True,
    time_limit=1800,
    soft_time_limit=1740,
    autoretry_for=TRANSIENT_ERRORS,
    retry_kwargs=RIDE_OUT_BROKER_RESTART,
    max_retries=5,
    retry_backoff=True,
)
def attribute_events(first_id, last_id):
    """Attribute the purchases and redemptions of one committed event write (ids first_id..last_id)."""
    from campaigns.services.attribution import conversions_attribute

    result = conversions_attribute(first_id=first_id, last_id=last_id)
    stats_refresh_soon(result.batch_ids)


@shared_task(queue="default", acks_late=True, time_limit=1800, soft_time_limit=1740, max_retries=0)
def purchase_summary_refresh():
    """Beat, every minute, and after an import: bring the audiences' purchase summary up to the committed
    events (campaigns/purchase_summary.py), in chunks that each commit; one that used its time queues the
    rest. Idle, it reads max(id) and returns (10 ms); 20M events from scratch take minutes (benchmarks.md)."""
    from campaigns.purchase_summary import summary_refresh

    result = summary_refresh(max_seconds=1200)
    if not result.caught_up and result.chunks:
        purchase_summary_refresh.apply_async(countdown=1)


@shared_task(queue="default", acks_late=True, time_limit=3600, soft_time_limit=3540, max_retries=0)
def attribution_sweep():
    """Beat: reconsider recent unattributed events (a lost task, a click that arrived after the purchase)."""
    from campaigns.services.attribution import conversions_attribute
    from promo_site.demo import click_window, delivery_window

    since = timezone.now() - max(click_window(), delivery_window()) - timedelta(days=1)
    result = conversions_attribute(since=since)
    stats_refresh_soon(result.batch_ids)


@shared_task(queue="default", acks_late=True, time_limit=1800, soft_time_limit=1740, max_retries=0)
def stats_refresh(batch_ids=None):
    """Rebuild the dashboard's aggregates (beat: every 5 minutes for the batches still collecting events)."""
    from campaigns.services.stats import stats_refresh as refresh

    cache.delete(STATS_PENDING_KEY)
    refresh(batch_ids=batch_ids)


STATS_PENDING_KEY = "campaigns:stats-refresh-pending"
STATS_DEBOUNCE_S = 30


def stats_refresh_soon(batch_ids):
    """Refresh these batches' aggregates in STATS_DEBOUNCE_S seconds, once for any number of calls meanwhile.

    Events arrive in API batches of up to 1,000, many a second: rebuilding a batch's aggregates after each
    would cost more than the writes. The periodic refresh catches any batch a debounced call left out.
    """
    if batch_ids and cache.add(STATS_PENDING_KEY, 1, timeout=STATS_DEBOUNCE_S * 4):
        stats_refresh.apply_async(kwargs={"batch_ids": sorted(batch_ids)}, countdown=STATS_DEBOUNCE_S)


@shared_task(
    queue="ml",
    acks_late=True,
    time_limit=UPLIFT_TRAIN_TIME_LIMIT,
    soft_time_limit=UPLIFT_TRAIN_TIME_LIMIT - 60,
    max_retries=0,
)
def train_uplift_model(model_id):
    """Train the uplift model on past batches with holdouts (scikit-learn, imported inside)."""
    from campaigns.services.uplift_targeting import uplift_model_train

    uplift_model_train(model_id=model_id)


@shared_task(queue="default", time_limit=60)
def sweep_stale_uplift_trainings():
    """Beat, every 15 minutes: an uplift training whose worker stopped is failed (promo_site/jobs.py)."""
    from campaigns.services.uplift_targeting import UPLIFT_TRAINING_JOB

    UPLIFT_TRAINING_JOB.sweep()


@shared_task(queue="default", acks_late=True, time_limit=300, soft_time_limit=280, max_retries=0)
def sweep_stale_generations():
    """Beat, every 5 minutes: requeue (or, after 3 times, fail) generations whose worker was lost."""
    generations_sweep()
