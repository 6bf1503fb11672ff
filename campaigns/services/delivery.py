"""Getting a sending batch's messages to the provider, each exactly once; and the sweeper.

A message is a Recipient row: queued -> claimed -> sent | failed, or back to queued for a retry.

- Senders. A start, a resume and the sweeper's restart raise the batch's run number and queue
  senders_per_batch() senders of that run (up to SEND_PARALLEL `send` tasks): each takes whichever due
  chunk is next, on whichever worker and host runs it, so a batch goes as fast as the workers and the rate
  limit allow. A sender of an older run stops at its next claim; the batch is finished (sending -> sent, one
  audit row) by whichever sender or sweeper first finds nothing queued or claimed, through the one
  conditional transition.
- Claim. A sender claims a chunk of due messages in a transaction of its own: it locks the batch row
  (so a pause waits for it, and a claim never follows a pause) and takes queued rows with
  SELECT ... FOR UPDATE SKIP LOCKED, then UPDATE ... SET claimed, claimed_at = now, attempts + 1. The
  claim commits before the provider is called. Only the rows of the claim are sent, and a result is
  written only to rows still claimed at that same claimed_at: a redelivered task, a second sender or
  the sweeper can never make a row go out twice.
- Before the call: the rate limiter's tokens (SEND_RATE_PER_SECOND, shared by every worker; a wait of at
  most half the post deadline, else the chunk goes back untouched), then a fresh look at each customer:
  an unsubscribe, a suppression or a withdrawn consent that came in meanwhile fails the message with
  that reason (so it takes effect mid-batch), and a customer now in their quiet hours goes back to the
  queue until they end.
- The gate, the last step before the provider call (the messages built): the claim's rows are still
  claimed at its claimed_at, and claimed_at + SEND_POST_DEADLINE_SECONDS has not passed, by the wall
  clock and by this process's monotonic clock; the call's HTTP timeout ends at that deadline. Otherwise
  nothing is posted and the rows still ours go back to the queue (the attempt not counted). So no
  request of a claim leaves after its deadline from a process that runs; docs/reliability.md says what a
  frozen one can still do.
- After the call: sent (the provider's message id), failed (the provider's reason: an invalid or
  inactive address), or back to queued with exponential backoff (429, 5xx: the provider took nothing),
  failed after SEND_MAX_ATTEMPTS. A call without a readable answer (a timeout) may have been taken:
  its messages stay claimed for the sweeper. A refusal of our configuration pauses the batch.
- The sweeper (beat, every minute) takes messages claimed longer ago than the post deadline plus the
  provider's search delay (SEND_LOOKUP_DELAY_SECONDS) plus SEND_CLOCK_MARGIN_SECONDS: by then no call of
  that claim can still reach the provider, and the provider's search shows what it took. A message the
  provider has (lookup_sent by our key, the Recipient id) is sent; one it never got goes back to the
  queue; with a provider that cannot look messages up, it fails as "unknown outcome" rather than risk a
  duplicate. It also restarts the senders of a batch whose senders were lost (all of them, under a new run).
"""

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from anymail.exceptions import AnymailError
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Exists, F, Min, OuterRef, Q
from django.utils import timezone

from campaigns import links, providers
from campaigns.eligibility import send_exclusion
from campaigns.messages import BatchMessages
from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.providers import ProviderConfigError
from campaigns.ratelimit import RateLimiter
from campaigns.rendering import TemplateProblem
from campaigns.schedule import Schedule
from campaigns.services.batches import BatchStateError, batch_transition
from promo_site.outbox import outbox_enqueue

log = logging.getLogger(__name__)
Status = Batch.Status
SendStatus = Recipient.SendStatus
PENDING = [SendStatus.QUEUED, SendStatus.CLAIMED]
NO_LOOKUP = "unknown outcome: provider has no lookup"
# A sender waiting for later messages (quiet hours, backoff) looks again after at most this long: a
# longer countdown would outlast the Redis broker's visibility timeout (1 hour) and be delivered twice.
MAX_COUNTDOWN = 300.0
# At the configured rate, a claimed chunk waits at most this long for its tokens.
CHUNK_SECONDS = 10


def sender_enqueue(batch_id, run, countdown=0.0, lane=0):
    """Queue sender `lane` of the batch's run `run` (its next slice), through the outbox of the current
    transaction. The lane only names the sender in logs: every sender of a run takes any due chunk."""
    outbox_enqueue("campaigns.tasks.send_batch_messages", batch_id, run, lane, countdown=countdown)


def senders_per_batch():
    """How many senders a run starts: one per SEND_SENDER_RATE messages a second of the rate limit, at most
    SEND_PARALLEL. Each holds a worker process while it sends (or sleeps on the rate limiter)."""
    wanted = math.ceil(settings.SEND_RATE_PER_SECOND / settings.SEND_SENDER_RATE)
    return max(1, min(settings.SEND_PARALLEL, wanted))


def sender_start(batch_id, action, *, by=None, comment="", **fields):
    """`action` (sending, resumed, restarted) moves the batch to sending under a new run number, and its
    senders (senders_per_batch()) are queued in the same transaction: the senders of an earlier run stop at
    their next claim."""
    with transaction.atomic():
        batch = batch_transition(batch_id, action, by=by, comment=comment, send_run=F("send_run") + 1, **fields)
        for lane in range(senders_per_batch()):
            sender_enqueue(batch.id, batch.send_run, lane=lane)
    return batch


def chunk_size():
    """Messages per claim: the provider's batch limit, SEND_CHUNK_SIZE, and CHUNK_SECONDS of the rate (or half
    the post deadline, the most a claim may wait for its tokens)."""
    seconds = min(CHUNK_SECONDS, settings.SEND_POST_DEADLINE_SECONDS / 2)
    rate_bound = int(settings.SEND_RATE_PER_SECOND * seconds)
    return max(1, min(providers.batch_limit(), settings.SEND_CHUNK_SIZE, rate_bound))


def claims_settle_after():
    """How old a claim is when the sweeper settles it: no call of it can reach the provider any more (its
    post deadline), the provider's search shows what it took (the search delay), and hosts' clocks may
    differ (the margin)."""
    return timedelta(
        seconds=settings.SEND_POST_DEADLINE_SECONDS
        + settings.SEND_LOOKUP_DELAY_SECONDS
        + settings.SEND_CLOCK_MARGIN_SECONDS
    )


@dataclass(frozen=True)
class Claim:
    batch_id: int
    ids: tuple
    at: datetime  # every row of this claim has claimed_at == at: results go to those rows only
    started: float | None = None  # time.monotonic() when `at` was read, in the claimant's process

    def rows(self):
        return Recipient.objects.filter(id__in=self.ids, send_status=SendStatus.CLAIMED, claimed_at=self.at)

    def time_left(self):
        """Seconds until the post deadline (claimed_at + SEND_POST_DEADLINE_SECONDS), the lesser by the wall
        clock (which counts a suspended host) and the monotonic clock (which a clock set back cannot stretch)."""
        deadline = settings.SEND_POST_DEADLINE_SECONDS
        left = deadline - (timezone.now() - self.at).total_seconds()
        if self.started is not None:
            left = min(left, deadline - (time.monotonic() - self.started))
        return left


def messages_claim(*, batch_id, run, limit):
    """Claim up to `limit` due messages, committed before returning; None when the batch is not sending
    or `run` is not its current sender."""
    now, started = timezone.now(), time.monotonic()
    with transaction.atomic():
        current = Batch.objects.select_for_update().filter(pk=batch_id, status=Status.SENDING, send_run=run)
        if not list(current.values_list("id", flat=True)):
            return None
        # The order of the index recipient_send_claim: the scan stops after `limit` rows (without the id in
        # the index, every due row of the batch was sorted at each claim: a million for a million messages).
        due = (
            Recipient.objects.select_for_update(skip_locked=True)
            .filter(batch_id=batch_id, send_status=SendStatus.QUEUED, send_after__lte=now)
            .order_by("send_after", "id")
            .values_list("id", flat=True)
        )
        ids = tuple(due[:limit])
        Recipient.objects.filter(id__in=ids, send_status=SendStatus.QUEUED).update(
            send_status=SendStatus.CLAIMED, claimed_at=now, attempts=F("attempts") + 1, send_error=""
        )
    return Claim(batch_id, ids, now, started)


def batch_send_slice(*, batch_id, run):
    """The send task's body, for any one of the run's senders: claim and send chunks for up to
    SEND_SLICE_SECONDS. Returns the countdown after which the task is to run again, or None when this sender
    is done (the batch paused, cancelled, restarted under a newer run, or nothing left for it to claim)."""
    batch = Batch.objects.filter(pk=batch_id, status=Status.SENDING, send_run=run).first()
    if batch is None:
        return None
    try:
        sender = Sender(batch)
    except ProviderConfigError as error:  # e.g. no server token: anymail refuses to make a connection
        _pause_for_provider(batch_id, error)
        return None
    deadline = time.monotonic() + settings.SEND_SLICE_SECONDS
    while time.monotonic() < deadline:
        claim = messages_claim(batch_id=batch_id, run=run, limit=sender.chunk)
        if claim is None:  # paused, cancelled, or replaced by a newer sender
            batch_finish_if_done(batch_id=batch_id)
            return None
        if not claim.ids:
            return _next_slice(batch_id)
        try:
            if not sender.send(claim):
                return None
        except TokensLate:  # other senders hold the rate: let them drain it
            return float(CHUNK_SECONDS)
    return 0.0


def _next_slice(batch_id):
    """Nothing is due now: finish the batch, or wait for the next message that will be."""
    next_due = Recipient.objects.filter(batch_id=batch_id, send_status=SendStatus.QUEUED).aggregate(
        at=Min("send_after")
    )["at"]
    if next_due is None:
        batch_finish_if_done(batch_id=batch_id)
        return None  # messages still claimed are settled by their call or by the sweeper, which finish
    return min(MAX_COUNTDOWN, max(0.0, (next_due - timezone.now()).total_seconds()))


def batch_finish_if_done(*, batch_id):
    """sending -> sent once no message is queued or claimed."""
    if Recipient.objects.filter(batch_id=batch_id, send_status__in=PENDING).exists():
        return False
    counts = Recipient.objects.filter(batch_id=batch_id).aggregate(
        sent=Count("id", filter=Q(send_status=SendStatus.SENT)),
        failed=Count("id", filter=Q(send_status=SendStatus.FAILED)),
    )
    comment = f"{counts['sent']:,} sent, {counts['failed']:,} failed"
    try:
        with transaction.atomic():
            batch_transition(batch_id, BatchEvent.Action.SENT, comment=comment, sent_at=timezone.now())
            # The dashboard's aggregates follow at once, rather than at beat's next 5-minute refresh: a
            # marketer who just sent a batch must not read "no sent batch yet" about it.
            outbox_enqueue("campaigns.tasks.stats_refresh", batch_ids=[batch_id])
    except BatchStateError:
        return False  # paused, cancelled, or finished by another sender in between
    return True


class Sender:
    """Sends claimed chunks of one batch: rate limit, last checks, the provider call, the results."""

    def __init__(self, batch):
        self.batch_id = batch.id
        self.schedule = Schedule.of(batch)
        self.tag = f"campaign-{batch.campaign_id}"
        self.messages = BatchMessages(batch)  # the batch's snapshot, as approved (campaigns/messages.py)
        self.chunk = chunk_size()
        rate = settings.SEND_RATE_PER_SECOND
        self.limiter = RateLimiter("send", rate, burst=max(self.chunk, math.ceil(rate)))

    def send(self, claim):
        """Send a claimed chunk and record every message's outcome. False when the provider refused our
        configuration: the batch is paused and its messages are queued again. Raises TokensLate, the
        chunk put back, when the rate limiter cannot give its tokens within half the post deadline."""
        self._wait_for_tokens(claim)
        now = timezone.now()
        rows = list(claim.rows().select_related("customer"))  # read after the wait: the latest opt-outs
        rows = self._drop_unreachable(claim, rows)
        rows = self._defer_quiet(claim, rows, now)
        if not rows:
            return True
        rows, messages = self._render(claim, rows)
        if not rows:
            return True
        try:
            outcomes = providers.send_batch(messages, gate=lambda: self._gate(claim, rows))
        except providers.NotPosted as refusal:
            self._not_posted(claim, rows, refusal)
            return True
        except ProviderConfigError as error:
            self._record(claim, rows, error.outcomes, config_error=True)
            _pause_for_provider(self.batch_id, error)
            return False
        self._record(claim, rows, outcomes)
        return True

    def _render(self, claim, rows):
        """The chunk's messages, rendered from the batch's snapshot. Generation rendered each once and approval
        needs all of them to render, so a failure here is transient (the render budget on a loaded host): the
        message goes back to the queue with backoff, as a provider's 5xx does, and fails after
        SEND_MAX_ATTEMPTS with the reason."""
        kept, messages, unrendered, outcomes = [], [], [], []
        for row in rows:
            try:
                messages.append(self._message(row))
                kept.append(row)
            except TemplateProblem as problem:
                log.warning("batch %s: recipient %s did not render: %s", self.batch_id, row.id, problem)
                unrendered.append(row)
                reason = f"could not render the message: {problem}"
                outcomes.append(providers.SendOutcome(str(row.id), providers.RETRY, reason=reason))
        if unrendered:
            self._record(claim, unrendered, outcomes)
        return kept, messages

    def _not_posted(self, claim, rows, refusal):
        posted = len(refusal.outcomes)  # the calls made before the refusal (none when one call takes all)
        self._record(claim, rows[:posted], refusal.outcomes)
        released = _release(claim, [row.id for row in rows[posted:]])
        log.warning(
            "batch %s: %s message(s) not posted (%s): %s put back", self.batch_id, len(rows) - posted, refusal, released
        )

    def _wait_for_tokens(self, claim):
        budget = claim.time_left() - settings.SEND_POST_DEADLINE_SECONDS / 2  # the other half is the call's
        try:
            self.limiter.acquire(len(claim.ids), timeout=max(0.0, budget))
        except TimeoutError as error:  # nothing reserved: the chunk goes back untouched
            _release(claim, claim.ids)
            raise TokensLate(str(error)) from error

    def _gate(self, claim, rows):
        """The last step before a provider call. Returns the seconds the call may take (to the post deadline);
        raises NotPosted when a row is no longer this claim's or too little of the deadline is left."""
        ids = [row.id for row in rows]
        with transaction.atomic():
            # FOR UPDATE: a sweeper settling these rows at this moment is waited for, not read around, so
            # this check holds whatever the clocks say.
            held = len(claim.rows().filter(id__in=ids).select_for_update().values_list("id", flat=True))
        if held < len(ids):
            raise providers.NotPosted(f"{len(ids) - held} of the claim's messages are no longer claimed by it")
        left = claim.time_left()  # last: only the HTTP request follows
        if left < settings.SEND_POST_DEADLINE_SECONDS / 4:  # a call started now would likely time out unanswered
            raise providers.NotPosted(f"{left:.1f} s left before the claim's post deadline")
        return left

    def _drop_unreachable(self, claim, rows):
        """Fail the messages of customers who opted out or were suppressed since the batch was generated (their
        rows were read with the customers after the claim); one UPDATE per reason."""
        keep, dropped = [], defaultdict(list)
        for row in rows:
            reason = send_exclusion(row.customer)
            if reason:
                dropped[reason].append(row.id)
            else:
                keep.append(row)
        for reason, ids in dropped.items():
            claim.rows().filter(id__in=ids).update(send_status=SendStatus.FAILED, send_error=reason)
        return keep

    def _defer_quiet(self, claim, rows, now):
        """Queue again, until their quiet hours end, the messages of customers now in them; one UPDATE per end."""
        keep, deferred = [], defaultdict(list)
        for row in rows:
            after = self.schedule.earliest(now, row.customer.time_zone)
            if after > now:
                deferred[after].append(row.id)
            else:
                keep.append(row)
        for after, ids in deferred.items():  # the claim did not count as an attempt
            claim.rows().filter(id__in=ids).update(
                send_status=SendStatus.QUEUED, send_after=after, attempts=F("attempts") - 1
            )
        return keep

    def _message(self, row):
        url = links.unsubscribe_url(row.id)
        subject, html, text = self.messages.render(row)
        return providers.OutgoingMessage(
            key=str(row.id),
            to=row.customer.email,
            subject=subject,
            html=html,
            text=f"{text}\n\nTo stop these e-mails: {url}",
            # RFC 8058 one-click unsubscribe: the provider's mailbox POSTs List-Unsubscribe=One-Click there
            headers={"List-Unsubscribe": f"<{url}>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
            tag=self.tag,
        )

    def _record(self, claim, rows, outcomes, config_error=False):
        now = timezone.now()
        for row, outcome in zip(rows, outcomes):
            self._apply(row, outcome, now, config_error)
        _write_results(claim, rows)

    def _apply(self, row, outcome, now, config_error):
        row.send_error = outcome.reason
        if outcome.status == providers.SENT:
            row.send_status, row.provider_message_id, row.sent_at = SendStatus.SENT, outcome.provider_message_id, now
        elif outcome.status == providers.REJECTED:
            row.send_status = SendStatus.FAILED
        elif config_error:  # not the message's fault: it keeps its attempts and waits for the resume
            row.send_status, row.send_after, row.attempts = SendStatus.QUEUED, now, row.attempts - 1
        elif outcome.uncertain:
            pass  # stays claimed: only the provider can say whether it went; the sweeper asks
        elif row.attempts >= settings.SEND_MAX_ATTEMPTS:
            row.send_status, row.send_error = (
                SendStatus.FAILED,
                f"gave up after {row.attempts} attempts: {outcome.reason}",
            )
        else:
            row.send_status = SendStatus.QUEUED
            row.send_after = self.schedule.earliest(now + backoff(row.attempts), row.customer.time_zone)


class TokensLate(Exception):
    """The rate limiter cannot give a claimed chunk its tokens within half the post deadline."""


RESULT_COLUMNS = (  # (field, PostgreSQL array type) of what a provider call's outcome changes
    ("send_status", "varchar"),
    ("send_after", "timestamptz"),
    ("sent_at", "timestamptz"),
    ("attempts", "smallint"),
    ("provider_message_id", "varchar"),
    ("send_error", "text"),
)


def _write_results(claim, rows):
    """Write each row's result fields to those of the rows still claimed at the claim's claimed_at.

    On PostgreSQL one UPDATE ... FROM unnest(one array per column): bulk_update's CASE WHEN per row and field
    took 2.3 s for a chunk of 500 (most of the sender's time, docs/benchmarks.md "Scale: sending")."""
    if connection.vendor != "postgresql":
        return claim.rows().bulk_update(rows, [field for field, _type in RESULT_COLUMNS])
    table = Recipient._meta.db_table
    columns = (("id", "bigint"), *RESULT_COLUMNS)
    sets = ", ".join(f"{field} = v.{field}" for field, _type in RESULT_COLUMNS)
    arrays = ", ".join(f"%s::{kind}[]" for _field, kind in columns)
    names = ", ".join(field for field, _type in columns)
    params = [[getattr(row, field) for row in rows] for field, _type in columns]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS r SET {sets} FROM unnest({arrays}) AS v({names}) "
            "WHERE r.id = v.id AND r.send_status = %s AND r.claimed_at = %s",
            [*params, SendStatus.CLAIMED, claim.at],
        )
        return cursor.rowcount


def _release(claim, ids):
    """Put back messages of the claim that were never handed to the provider: queued, when they were due
    (send_after is unchanged), and the claim's attempt not counted. Rows the claim lost are left alone."""
    return claim.rows().filter(id__in=ids).update(send_status=SendStatus.QUEUED, attempts=F("attempts") - 1)


def backoff(attempts):
    """Seconds before the next try of a message tried `attempts` times: base x 2^(attempts - 1), capped."""
    seconds = settings.SEND_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.SEND_RETRY_MAX_SECONDS))


def messages_send(*, claim):
    """Send one claimed chunk (the sender task does this in its loop)."""
    return Sender(Batch.objects.get(pk=claim.batch_id)).send(claim)


def _pause_for_provider(batch_id, error):
    comment = f"The provider refused our configuration: {error}. Fix the settings, then resume."
    try:
        batch_transition(batch_id, BatchEvent.Action.PAUSED, comment=comment)
    except BatchStateError:
        pass  # paused or cancelled by someone in the meantime
    log.error("batch %s paused: %s", batch_id, error)


# --- the sweeper -----------------------------------------------------------------


def messages_sweep(*, limit=500):
    """Settle messages claimed longer than claims_settle_after() ago, then restart or finish the batches
    concerned. Returns how many messages it settled."""
    cutoff = timezone.now() - claims_settle_after()
    stuck = list(
        Recipient.objects.filter(send_status=SendStatus.CLAIMED, claimed_at__lt=cutoff).order_by("claimed_at", "id")[
            :limit
        ]
    )
    settled = _settle_stuck(stuck)
    for batch_id in {row.batch_id for row in stuck} | _stalled_batches(cutoff):
        if not batch_finish_if_done(batch_id=batch_id):
            _restart(batch_id)
    return settled


def _settle_stuck(rows):
    if not rows:
        return 0
    try:
        can_lookup = providers.lookup_supported()
    except ProviderConfigError as error:
        log.error("sweeper: cannot reach the provider's configuration: %s", error)
        return 0
    settled = 0
    for row in rows:
        try:
            fields = _stuck_outcome(row, can_lookup)
        except (AnymailError, ProviderConfigError) as error:
            log.warning("sweeper: the provider's search failed (%s); trying again at the next sweep", error)
            break  # the provider is unwell: every other look-up would fail the same way
        stale = Recipient.objects.filter(id=row.id, send_status=SendStatus.CLAIMED, claimed_at=row.claimed_at)
        settled += stale.update(**fields)
    return settled


def _stuck_outcome(row, can_lookup):
    if not can_lookup:
        return {"send_status": SendStatus.FAILED, "send_error": NO_LOOKUP}
    message_id = providers.lookup_sent(str(row.id))
    if message_id:  # it went out; when exactly the provider knows, the claim is the closest we have
        return {"send_status": SendStatus.SENT, "provider_message_id": message_id, "sent_at": row.claimed_at}
    if row.attempts >= settings.SEND_MAX_ATTEMPTS:
        reason = f"gave up after {row.attempts} attempts: the provider never got it"
        return {"send_status": SendStatus.FAILED, "send_error": reason}
    reason = "queued again by the sweeper: the provider never got it"
    return {"send_status": SendStatus.QUEUED, "send_after": timezone.now(), "send_error": reason}


def _stalled_batches(cutoff):
    """Sending batches whose sender is gone: messages due since before the cutoff and no claim since,
    or nothing left to send and nobody to say so."""
    recipients = Recipient.objects.filter(batch=OuterRef("pk"))
    overdue = recipients.filter(send_status=SendStatus.QUEUED, send_after__lt=cutoff)
    recent_claim = recipients.filter(claimed_at__gte=cutoff)
    pending = recipients.filter(send_status__in=PENDING)
    stalled = Batch.objects.filter(status=Status.SENDING).filter(
        (Exists(overdue) & ~Exists(recent_claim)) | ~Exists(pending)
    )
    return set(stalled.values_list("id", flat=True))


def _restart(batch_id):
    """New senders for a sending batch under a new run, with its audit row; the older ones stop at their next
    claim, so what a lost sender left is taken up whichever of them was lost."""
    try:
        sender_start(batch_id, BatchEvent.Action.RESTARTED, comment="the sweeper found no live sender")
    except BatchStateError:
        pass  # paused, cancelled or finished in the meantime
