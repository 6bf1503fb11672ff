"""Sending a batch: the transitions approved -> sending <-> paused, and the live progress.

    approved ──► sending ◄──► paused          (each through batch_transition, services/batches.py)
                    └──► sent                  when no message is queued or claimed (delivery.py)

The work itself (claims, the provider calls, retries, the sweeper) is in campaigns/services/delivery.py.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Min, Q
from django.utils import timezone

from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.schedule import Schedule
from campaigns.services.batches import batch_transition
from campaigns.services.delivery import chunk_size, sender_start

Status = Batch.Status
Action = BatchEvent.Action
SendStatus = Recipient.SendStatus
RATE_WINDOW = timedelta(seconds=60)


def _may_send(user):
    if not user.has_perm("campaigns.change_batch"):
        raise PermissionDenied("You may not send, pause or resume batches.")


def batch_send_start(*, batch: Batch, by):
    """Queue every recipient's message, each due at the campaign's start time pushed out of the
    quiet hours in the customer's own time zone, and start the sender."""
    _may_send(by)
    now = timezone.now()
    recipients = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT)
    with transaction.atomic():
        batch = sender_start(
            batch.id, Action.SENDING, by=by, comment=f"{recipients.count():,} messages", send_started_at=now
        )
        _queue(recipients, Schedule.of(batch), now)
    return batch


def _queue(recipients, schedule, now):
    first = schedule.first_send(now)
    zones = recipients.order_by().values_list("customer__time_zone", flat=True).distinct()
    for zone in list(zones):  # one UPDATE per time zone, not per customer
        recipients.filter(customer__time_zone=zone).update(
            send_status=SendStatus.QUEUED, send_after=schedule.earliest(first, zone)
        )


def batch_pause(*, batch: Batch, by, comment=""):
    """Stop claiming messages; the chunk already handed to the provider is settled as usual."""
    _may_send(by)
    return batch_transition(batch.id, Action.PAUSED, by=by, comment=comment)


def batch_resume(*, batch: Batch, by, comment=""):
    """Start a new sender on the messages still queued; nothing sent or failed is touched."""
    _may_send(by)
    return sender_start(batch.id, Action.RESUMED, by=by, comment=comment)


def batch_send_progress(*, batch: Batch):
    """Counts by message state, what remains, the recent rate (messages a second over the last minute),
    the latest failures, and why the batch is paused."""
    now = timezone.now()
    rows = Recipient.objects.filter(batch=batch, outcome=Recipient.Outcome.RECIPIENT)
    counts = rows.aggregate(
        total=Count("id"),
        **{state: Count("id", filter=Q(send_status=state)) for state in SendStatus.values},
        next_due=Min("send_after", filter=Q(send_status=SendStatus.QUEUED)),
    )
    started = batch.send_started_at or now
    window = min(RATE_WINDOW.total_seconds(), max(1.0, (now - started).total_seconds()))
    limit = settings.SEND_RATE_PER_SECOND
    # A burst pushes the paced times forward by at most its size / limit: look back that much further.
    since = now - timedelta(seconds=window + chunk_size() / limit + 1)
    recent = rows.filter(send_status=SendStatus.SENT, sent_at__gte=since).values_list("sent_at", flat=True)
    failures = rows.filter(send_status=SendStatus.FAILED).select_related("customer").order_by("-id")[:10]
    return {
        **{key: counts[key] for key in ("total", *SendStatus.values)},
        "remaining": counts["queued"] + counts["claimed"],
        "rate": round(paced_rate(sorted(recent), now=now, window=window, limit=limit), 1),
        "burst": chunk_size(),
        "next_due": counts["next_due"] and counts["next_due"].isoformat(),
        "failures": [{"id": r.id, "to": r.customer.email, "error": r.send_error} for r in failures],
        "note": _pause_note(batch),
    }


def paced_rate(sent_times, *, now, window, limit):
    """Messages a second over the `window` seconds before `now`, a provider call's burst counted as the
    limiter counts it: spread at `limit` a second over the seconds its tokens cover.

    A Postmark batch call hands up to a chunk of messages over at one instant, paid for by the rate limiter's
    tokens; counted at that instant, the first seconds of a send would read as hundreds a second. Each message
    is therefore counted at its paced time: its sent_at, or one 1/limit after the previous message's paced
    time when that is later (the theoretical arrival time of a GCRA limiter). Paced times are at least
    1/limit apart, so the rate shown never exceeds the limit; the sender's token bucket keeps them within one
    chunk of the real times.
    """
    paced, count, start, step = None, 0, now - timedelta(seconds=window), timedelta(seconds=1 / limit)
    for sent_at in sent_times:
        paced = sent_at if paced is None or sent_at > paced else paced
        count += start <= paced < now
        paced += step
    return count / window


def _pause_note(batch):
    if batch.status != Status.PAUSED:
        return ""
    event = batch.events.filter(action=Action.PAUSED).select_related("by").order_by("-at", "-id").first()
    if event is None:
        return ""
    who = event.by or "the sender"
    return f"Paused by {who}" + (f": {event.comment}" if event.comment else ".")
