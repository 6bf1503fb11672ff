"""Sending approved batches: claims, retries, the sweeper, unsubscribes, pause and resume.

TestSendingServices drives the services in this process against the fake Postmark. TestSendingThroughAWorker
sends through the real Celery worker on the `send` queue (tests/conftest.py points it at the fake Postmark,
in chunks of 20 messages with quick retries), with anymail's real Postmark backend.
"""

import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time as time_module
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from urllib.parse import urlsplit

import pytest
from anymail.signals import pre_send
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from campaigns import links
from campaigns.messages import recipient_message
from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.ratelimit import RateLimiter
from campaigns.schedule import Schedule
from campaigns.services.batches import batch_approve, batch_cancel, batch_request
from campaigns.services.delivery import (
    CHUNK_SECONDS,
    NO_LOOKUP,
    batch_send_slice,
    claims_settle_after,
    messages_claim,
    messages_send,
    messages_sweep,
)
from campaigns.services.generation import batch_generate
from campaigns.services.sending import batch_pause, batch_resume, batch_send_progress, batch_send_start, paced_rate
from campaigns.services.unsubscribe import customer_unsubscribe
from campaigns.tasks import sweep_stuck_messages
from promo_site.models import OutboxTask
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Customer
from tests.conftest import ARTIFACTS, REPO, _database_url, wait_for

SendStatus = Recipient.SendStatus
POSTMARK = "anymail.backends.postmark.EmailBackend"


def approve(campaign, marketer, approver, worker=False):
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))

    def generated():
        return status_of(batch) == Batch.Status.GENERATED

    if not worker:
        batch_generate(batch_id=batch.id)
    # With a worker, it generates the batch (the request queued that on commit); in a test that has one and
    # generates here as well, the worker may hold chunks this call left to it.
    wait_for(generated, timeout=120)
    return batch_approve(batch=Batch.objects.get(pk=batch.pk), by=approver)


@pytest.fixture
def approved(campaign, active_model, marketer, approver):
    return approve(campaign, marketer, approver)


@pytest.fixture
def postmark(fake_postmark, settings):
    """This process sends to the fake Postmark too (the worker always does)."""
    fake_postmark.reset()
    settings.EMAIL_BACKEND = POSTMARK
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": fake_postmark.token, "POSTMARK_API_URL": fake_postmark.url}
    return fake_postmark


def recipients(batch):
    return Recipient.objects.filter(batch=batch, outcome=Recipient.Outcome.RECIPIENT).select_related("customer")


def sent_keys(fake):
    """How many times the provider took each message, by our key (the Recipient id)."""
    return Counter(int(record["Metadata"]["promo_message"]) for record in fake.outbox)


def headers_of(record):
    return {header["Name"]: header["Value"] for header in record["Headers"]}


def status_of(batch):
    return Batch.objects.get(pk=batch.pk).status


def counts(batch):
    return Counter(recipients(batch).values_list("send_status", flat=True))


def run_of(batch):
    return Batch.objects.get(pk=batch.pk).send_run


def age_claims(batch, only_stuck=False):
    """Time passes: the batch's claimed messages are older than the sweeper's cutoff (claims_settle_after)."""
    claimed = Recipient.objects.filter(batch=batch, send_status=SendStatus.CLAIMED)
    if only_stuck:  # left for the sweeper, not in a call right now (a claim clears send_error)
        claimed = claimed.exclude(send_error="")
    return claimed.update(claimed_at=F("claimed_at") - timedelta(hours=1))


# --- when messages may go out ------------------------------------------------------


class TestSchedule:
    night = Schedule(quiet_start=time(22), quiet_end=time(7))

    def test_it_leaves_a_moment_outside_the_quiet_hours_alone(self):
        noon = datetime(2026, 3, 2, 12, tzinfo=UTC)
        assert self.night.earliest(noon, "Europe/Berlin") == noon

    def test_it_moves_a_moment_in_the_quiet_hours_to_their_end_in_the_customers_zone(self):
        # 22:30 UTC is 23:30 in Berlin (winter): quiet until 07:00 Berlin the next morning, 06:00 UTC
        evening = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)
        assert self.night.earliest(evening, "Europe/Berlin") == datetime(2026, 3, 3, 6, tzinfo=UTC)
        # 05:00 UTC is 14:00 in Tokyo: not quiet there
        early = datetime(2026, 3, 3, 5, tzinfo=UTC)
        assert self.night.earliest(early, "Asia/Tokyo") == early
        assert self.night.earliest(early, "UTC") == datetime(2026, 3, 3, 7, tzinfo=UTC)

    def test_quiet_hours_within_one_day(self):
        lunch = Schedule(quiet_start=time(12), quiet_end=time(14))
        assert lunch.earliest(datetime(2026, 3, 2, 13, tzinfo=UTC), "UTC") == datetime(2026, 3, 2, 14, tzinfo=UTC)
        assert lunch.earliest(datetime(2026, 3, 2, 14, tzinfo=UTC), "UTC") == datetime(2026, 3, 2, 14, tzinfo=UTC)

    def test_an_unknown_zone_counts_as_utc(self):
        moment = datetime(2026, 3, 2, 23, tzinfo=UTC)
        assert self.night.earliest(moment, "Mars/Olympus") == datetime(2026, 3, 3, 7, tzinfo=UTC)


# --- the services, in this process ------------------------------------------------


@pytest.mark.django_db
class TestSendingServices:
    def test_it_queues_each_recipient_after_the_schedule_and_their_quiet_hours(
        self, campaign, active_model, marketer, approver
    ):
        # given a campaign that starts in an hour, quiet from 22:00 to 07:00, and customers in two time zones
        send_at = timezone.now().replace(microsecond=0) + timedelta(hours=1)
        campaign.send_at, campaign.quiet_hours_start, campaign.quiet_hours_end = send_at, time(22), time(7)
        campaign.save()
        Customer.objects.filter(external_id__endswith="7").update(time_zone="Asia/Tokyo")
        batch = approve(campaign, marketer, approver)
        # when it is sent
        batch_send_start(batch=batch, by=marketer)
        # then every recipient's message is queued for the start time, moved out of their own quiet hours
        schedule = Schedule(send_at=send_at, quiet_start=time(22), quiet_end=time(7))
        rows = list(recipients(batch))
        assert {row.send_status for row in rows} == {SendStatus.QUEUED}
        assert {row.customer.time_zone for row in rows} == {"UTC", "Asia/Tokyo"}
        for row in rows:
            assert row.send_after == schedule.earliest(send_at, row.customer.time_zone) >= send_at
        # the holdout and the excluded are not queued
        assert not batch.recipients.exclude(outcome=Recipient.Outcome.RECIPIENT).exclude(send_status="").exists()
        event = batch.events.get(action=BatchEvent.Action.SENDING)
        assert event.by == marketer and event.comment == f"{len(rows)} messages"

    def test_only_someone_who_may_change_batches_sends_pauses_and_resumes(self, approved, approver, analyst):
        for user in (approver, analyst):
            with pytest.raises(PermissionDenied):
                batch_send_start(batch=approved, by=user)
        assert status_of(approved) == Batch.Status.APPROVED

    def test_a_batch_is_sent_once_and_only_when_approved(self, campaign, active_model, marketer, approver):
        batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        batch_generate(batch_id=batch.id)
        with pytest.raises(ValidationError):
            batch_send_start(batch=batch, by=marketer)  # in review
        batch = batch_approve(batch=Batch.objects.get(pk=batch.pk), by=approver)
        batch_send_start(batch=batch, by=marketer)
        with pytest.raises(ValidationError):
            batch_send_start(batch=batch, by=marketer)

    def test_it_sends_every_message_once_and_finishes_the_batch(self, postmark, approved, marketer):
        batch = batch_send_start(batch=approved, by=marketer)
        # when the sender task's body runs (no worker here)
        assert batch_send_slice(batch_id=batch.id, run=batch.send_run) is None
        # then
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch)}
        assert status_of(batch) == Batch.Status.SENT
        assert batch.events.get(action=BatchEvent.Action.SENT).comment == f"{len(postmark.outbox)} sent, 0 failed"
        # and the finish queued the dashboard's refresh of this batch, in the transition's transaction
        refresh = OutboxTask.objects.filter(task="campaigns.tasks.stats_refresh").get()
        assert refresh.kwargs == {"batch_ids": [batch.id]}
        # and a second run of the same task sends nobody again
        assert batch_send_slice(batch_id=batch.id, run=batch.send_run) is None
        assert len(postmark.outbox) == len(sent_keys(postmark))
        assert OutboxTask.objects.filter(task="campaigns.tasks.stats_refresh").count() == 1

    def test_an_unsubscribe_after_the_claim_stops_that_message(self, postmark, approved, marketer, client):
        # given a chunk claimed by a sender
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        leaving = Recipient.objects.get(pk=claim.ids[3])
        # when that customer unsubscribes (RFC 8058 one-click) before the sender calls the provider
        url = urlsplit(links.unsubscribe_url(leaving.id)).path
        assert client.post(url, {"List-Unsubscribe": "One-Click"}).status_code == 200
        messages_send(claim=claim)
        # then their message is failed as unsubscribed and never reaches the provider; the others go
        leaving.refresh_from_db()
        assert (leaving.send_status, leaving.send_error) == (SendStatus.FAILED, "unsubscribed")
        assert set(sent_keys(postmark)) == set(claim.ids) - {leaving.id}

    def test_a_message_that_does_not_render_at_send_time_waits_and_the_others_go(
        self, postmark, approved, marketer, monkeypatch
    ):
        # given a chunk in which one message cannot be rendered now (e.g. the render budget on a loaded host)
        from campaigns.messages import BatchMessages
        from campaigns.rendering import TemplateProblem

        batch = batch_send_start(batch=approved, by=marketer)
        stuck = recipients(batch).order_by("id")[2]
        render = BatchMessages.render

        def flaky(self, row):
            if row.id == stuck.id:
                raise TemplateProblem("the template took longer than its time budget")
            return render(self, row)

        monkeypatch.setattr(BatchMessages, "render", flaky)
        # when the sender runs
        batch_send_slice(batch_id=batch.id, run=batch.send_run)
        # then the others are sent once, and that one goes back to the queue with the reason, not lost or failed
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch) if row.id != stuck.id}
        stuck.refresh_from_db()
        assert stuck.send_status == SendStatus.QUEUED and stuck.send_after > timezone.now()
        assert "could not render the message: the template took longer" in stuck.send_error
        # and once it renders again, it is sent on its next attempt
        monkeypatch.setattr(BatchMessages, "render", render)
        Recipient.objects.filter(pk=stuck.pk).update(send_after=timezone.now())
        batch_send_slice(batch_id=batch.id, run=batch.send_run)
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch)}
        assert status_of(batch) == Batch.Status.SENT

    def test_a_refused_configuration_pauses_the_batch_without_burning_it(self, postmark, approved, marketer):
        # given a Postmark account on which our sender address is not confirmed
        postmark.configure(senders=["someone-else@example.test"])
        batch = batch_send_start(batch=approved, by=marketer)
        # when the sender runs
        assert batch_send_slice(batch_id=batch.id, run=batch.send_run) is None
        # then the batch is paused with Postmark's reason, and every message waits, none failed
        assert status_of(batch) == Batch.Status.PAUSED
        event = batch.events.filter(action=BatchEvent.Action.PAUSED).get()
        assert event.by is None and "not a Sender Signature" in event.comment
        assert counts(batch) == {SendStatus.QUEUED: recipients(batch).count()}
        assert set(recipients(batch).values_list("attempts", flat=True)) == {0}
        assert "not a Sender Signature" in batch_send_progress(batch=Batch.objects.get(pk=batch.pk))["note"]
        # when the settings are fixed and sending resumes
        postmark.configure(senders=[])
        batch = batch_resume(batch=batch, by=marketer)
        batch_send_slice(batch_id=batch.id, run=batch.send_run)
        # then everyone gets their message once
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch)}
        assert status_of(batch) == Batch.Status.SENT

    def test_a_message_fails_after_the_maximum_attempts(self, postmark, approved, marketer, settings):
        settings.SEND_MAX_ATTEMPTS, settings.SEND_RETRY_BASE_SECONDS = 2, 0
        postmark.configure(fail_next=["503", "503"])
        batch = batch_send_start(batch=approved, by=marketer)
        batch_send_slice(batch_id=batch.id, run=batch.send_run)
        rows = list(recipients(batch))
        assert {(row.send_status, row.attempts) for row in rows} == {(SendStatus.FAILED, 2)}
        assert rows[0].send_error.startswith("gave up after 2 attempts: HTTP 503 from Postmark")
        assert postmark.outbox == [] and status_of(batch) == Batch.Status.SENT

    def test_the_sweeper_requeues_what_a_lost_sender_claimed_and_the_provider_never_got(
        self, postmark, approved, marketer
    ):
        # given a sender that claimed a chunk and died before calling the provider
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        # when the claim is old and the sweeper runs
        age_claims(batch)
        assert messages_sweep() == 10
        # then the provider, asked, has none of them: they are queued again, and a new sender takes over
        assert set(Recipient.objects.filter(id__in=claim.ids).values_list("send_status", flat=True)) == {"queued"}
        assert run_of(batch) == batch.send_run + 1
        restart = batch.events.order_by("id").last()
        assert (restart.action, restart.comment) == (BatchEvent.Action.RESTARTED, "the sweeper found no live sender")
        assert batch_send_slice(batch_id=batch.id, run=batch.send_run) is None  # the lost one's run is over
        batch_send_slice(batch_id=batch.id, run=run_of(batch))
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch)}
        assert status_of(batch) == Batch.Status.SENT

    def test_a_claimant_that_stalls_past_its_post_deadline_posts_nothing_and_puts_the_chunk_back(
        self, postmark, approved, marketer, settings
    ):
        # given a post deadline of 2 s, and a claimant that stalls for 1.6 s while it builds its messages
        settings.SEND_POST_DEADLINE_SECONDS = 2
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        stalls = []

        def stall(sender, message, **kwargs):
            if not stalls:
                stalls.append(message)
                time_module.sleep(1.6)  # after it, less than a quarter of the deadline is left

        # when it goes on to send
        pre_send.connect(stall, weak=False)
        try:
            assert messages_send(claim=claim)
        finally:
            pre_send.disconnect(stall)
        # then its check before the call refused it: nothing reached the provider, and the chunk is
        # queued again, the attempt not counted
        assert stalls and postmark.calls == []
        stale = Recipient.objects.filter(id__in=claim.ids)
        assert set(stale.values_list("send_status", "attempts")) == {(SendStatus.QUEUED, 0)}
        # and the next sender sends each message once
        settings.SEND_POST_DEADLINE_SECONDS = 60
        batch_send_slice(batch_id=batch.id, run=batch.send_run)
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(batch)}

    def test_a_claimant_whose_chunk_the_sweeper_took_posts_nothing(self, postmark, approved, marketer):
        # given a claimed chunk that the sweeper puts back (and another sender claims) while the claimant
        # builds its messages
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        taken = []

        def sweeper_takes_it(sender, message, **kwargs):
            if not taken:
                taken.append(Recipient.objects.filter(id__in=claim.ids).update(send_status=SendStatus.QUEUED))
                taken.append(messages_claim(batch_id=batch.id, run=batch.send_run, limit=10))

        # when the first claimant goes on to send
        pre_send.connect(sweeper_takes_it, weak=False)
        try:
            messages_send(claim=claim)
        finally:
            pre_send.disconnect(sweeper_takes_it)
        # then it posted nothing, and wrote nothing over the new claim
        assert taken[0] == 10 and set(taken[1].ids) == set(claim.ids)
        assert postmark.calls == []
        assert set(taken[1].rows().values_list("attempts", flat=True)) == {2}
        # and the new claim sends them, once
        messages_send(claim=taken[1])
        assert sent_keys(postmark) == {key: 1 for key in claim.ids}

    def test_the_sweeper_settles_a_claim_after_the_post_deadline_the_search_delay_and_the_margin(
        self, postmark, approved, marketer, settings
    ):
        settings.SEND_POST_DEADLINE_SECONDS, settings.SEND_LOOKUP_DELAY_SECONDS = 60, 60
        settings.SEND_CLOCK_MARGIN_SECONDS = 30
        assert claims_settle_after() == timedelta(seconds=150)
        # given a claimant that died after its claim
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        stuck = Recipient.objects.filter(id__in=claim.ids)
        # when the sweeper runs 140 s after the claim, it leaves it alone: a call might still be on its way
        stuck.update(claimed_at=F("claimed_at") - timedelta(seconds=140))
        assert messages_sweep() == 0
        assert set(stuck.values_list("send_status", flat=True)) == {SendStatus.CLAIMED}
        # and 160 s after, it settles it: the provider never got those messages, so they are queued again
        stuck.update(claimed_at=F("claimed_at") - timedelta(seconds=20))
        assert messages_sweep() == 10
        assert set(stuck.values_list("send_status", flat=True)) == {SendStatus.QUEUED}

    def test_a_chunk_whose_tokens_come_too_late_goes_back_untouched(self, postmark, approved, marketer, settings):
        # given a post deadline of 4 s (so a claim waits at most about 2 s for its tokens) and a rate limiter
        # that other senders have booked for the next 8 s
        settings.SEND_POST_DEADLINE_SECONDS = 4
        limiter = RateLimiter("send", settings.SEND_RATE_PER_SECOND, burst=settings.SEND_RATE_PER_SECOND)
        for _second in range(8):
            limiter.reserve(int(settings.SEND_RATE_PER_SECOND))
        batch = batch_send_start(batch=approved, by=marketer)
        # when the sender claims a chunk
        countdown = batch_send_slice(batch_id=batch.id, run=batch.send_run)
        # then it puts the chunk back, its attempt not counted, and looks again later; nothing was posted
        assert countdown == CHUNK_SECONDS
        assert set(recipients(batch).values_list("send_status", "attempts")) == {(SendStatus.QUEUED, 0)}
        assert postmark.calls == []

    def test_beat_sweeps_often_enough_to_settle_a_lost_chunk_within_four_minutes(self, settings):
        schedule = settings.CELERY_BEAT_SCHEDULE["sweep-stuck-messages"]["schedule"]
        assert claims_settle_after().total_seconds() + schedule <= 4 * 60

    def test_without_a_provider_lookup_the_sweeper_fails_what_it_cannot_know(self, approved, marketer, settings):
        # given a provider that cannot look messages up (anymail's test backend stands for one)
        settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
        batch = batch_send_start(batch=approved, by=marketer)
        claim = messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
        # when a claim is stuck and the sweeper runs
        age_claims(batch)
        messages_sweep()
        # then those messages fail as unknown rather than risk going out twice
        stuck = Recipient.objects.filter(id__in=claim.ids)
        assert set(stuck.values_list("send_status", "send_error")) == {(SendStatus.FAILED, NO_LOOKUP)}

    def test_sent_messages_of_a_cancelled_batch_count_towards_the_frequency_cap(
        self, postmark, campaign, active_model, marketer, approver
    ):
        # given a batch cancelled after some of its messages went out, and a cap of one message a week
        batch = batch_send_start(batch=approve(campaign, marketer, approver), by=marketer)
        messages_send(claim=messages_claim(batch_id=batch.id, run=batch.send_run, limit=10))
        batch_cancel(batch=batch, by=marketer)
        campaign.frequency_cap_messages = 1
        campaign.save()
        # when the next batch is generated
        following = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
        batch_generate(batch_id=following.id)
        # then those who got a message are capped, and those who did not are not
        got = set(recipients(batch).filter(send_status=SendStatus.SENT).values_list("customer_id", flat=True))
        capped = set(following.recipients.filter(reason="frequency_cap").values_list("customer_id", flat=True))
        assert len(got) == 10 and capped == got


@pytest.mark.django_db
class TestSendingPages:
    def test_a_marketer_sends_from_the_batch_page_and_an_approver_cannot(self, client, approved, marketer, approver):
        page = reverse("admin:campaigns_batch_change", args=[approved.pk])
        client.force_login(approver)
        assert 'id="send-batch"' not in client.get(page).content.decode()
        client.post(reverse("admin:campaigns_batch_send", args=[approved.pk]))
        assert status_of(approved) == Batch.Status.APPROVED
        client.force_login(marketer)
        assert 'id="send-batch"' in client.get(page).content.decode()
        client.post(reverse("admin:campaigns_batch_send", args=[approved.pk]))
        assert status_of(approved) == Batch.Status.SENDING
        html = client.get(page).content.decode()
        assert 'id="pause-sending"' in html and 'id="send-batch"' not in html
        client.post(reverse("admin:campaigns_batch_pause", args=[approved.pk]))
        assert status_of(approved) == Batch.Status.PAUSED
        assert 'id="resume-sending"' in client.get(page).content.decode()
        client.post(reverse("admin:campaigns_batch_resume", args=[approved.pk]))
        assert status_of(approved) == Batch.Status.SENDING
        actions = list(approved.events.values_list("action", "by__username"))
        assert actions[-3:] == [("sending", "marketer"), ("paused", "marketer"), ("resumed", "marketer")]

    def test_the_progress_counts_the_messages(self, client, postmark, approved, marketer, analyst):
        # given a batch with one rejected address, partly sent
        rows = list(recipients(approved))
        postmark.configure(invalid=[rows[0].customer.email])
        batch = batch_send_start(batch=approved, by=marketer)
        messages_send(claim=messages_claim(batch_id=batch.id, run=batch.send_run, limit=5))
        # when anyone who may see the batch asks for its progress
        client.force_login(analyst)
        data = client.get(reverse("admin:campaigns_batch_sending", args=[batch.pk])).json()
        # then
        assert (data["status"], data["total"], data["sent"], data["failed"]) == ("sending", len(rows), 4, 1)
        assert data["remaining"] == data["queued"] == len(rows) - 5 and data["claimed"] == 0
        assert data["rate"] > 0 and data["rate_limit"] == 50
        assert data["failures"] == [
            {
                "id": rows[0].id,
                "to": rows[0].customer.email,
                "error": f"Invalid 'To' address: '{rows[0].customer.email}'.",
            }
        ]

    def test_failed_messages_are_a_filter_of_the_recipients_list(self, client, approved, marketer):
        client.force_login(marketer)
        url = reverse("admin:campaigns_recipient_changelist")
        response = client.get(url, {"batch__id__exact": approved.pk, "send_status__exact": "failed"})
        assert response.status_code == 200


# --- through the real worker --------------------------------------------------------


def wait_until_sent(batch, timeout=90):
    def batch_is_sent():
        return status_of(batch) == Batch.Status.SENT

    wait_for(batch_is_sent, timeout=timeout)


def wait_until_settled_or_stuck(batch):
    """Until the batch is sent, or only messages left for the sweeper remain."""

    def settled_or_stuck():
        state = counts(batch)
        stuck = age_claims_count(batch)
        return status_of(batch) == Batch.Status.SENT or (not state["queued"] and state["claimed"] == stuck > 0)

    wait_for(settled_or_stuck, timeout=90)


def age_claims_count(batch):
    return Recipient.objects.filter(batch=batch, send_status=SendStatus.CLAIMED).exclude(send_error="").count()


def wait_until_swept(batch):
    def no_old_claims():
        old = timezone.now() - timedelta(minutes=30)
        return not Recipient.objects.filter(batch=batch, send_status=SendStatus.CLAIMED, claimed_at__lt=old).exists()

    wait_for(no_old_claims, timeout=60)


def sweep_until_sent(batch, rounds=10):
    """What beat's sweeper does every few minutes, with the clock moved on each time."""
    for _round in range(rounds):
        wait_until_settled_or_stuck(batch)
        if status_of(batch) == Batch.Status.SENT:
            return
        age_claims(batch, only_stuck=True)
        sweep_stuck_messages.delay()
        wait_until_swept(batch)
    pytest.fail(f"batch {batch} not sent after {rounds} sweeps: {counts(batch)}")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestSendingThroughAWorker:
    @pytest.fixture(autouse=True)
    def _worker(self, celery_worker, fake_postmark):
        fake_postmark.reset()

    @pytest.fixture
    def active_model(self, celery_worker, shop, settings, admin_user):
        settings.MEDIA_ROOT = celery_worker.media_root  # the worker loads the model from where this process saved it
        version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
        return modelversion_activate(version=version, by=admin_user)

    @pytest.fixture
    def approved(self, campaign, active_model, marketer, approver):
        return approve(campaign, marketer, approver, worker=True)

    def test_every_approved_recipient_gets_one_message_of_their_own(self, fake_postmark, approved, marketer, client):
        # when the marketer sends the batch
        batch_send_start(batch=approved, by=marketer)
        wait_until_sent(approved)
        # then each recipient got exactly one message
        rows = {row.id: row for row in recipients(approved)}
        assert sent_keys(fake_postmark) == {key: 1 for key in rows}
        for record in fake_postmark.outbox:
            row = rows[int(record["Metadata"]["promo_message"])]
            # with their own code, items and subject, from us
            assert (record["To"], record["Subject"]) == (row.customer.email, recipient_message(row)[0])
            assert record["From"] == "promotions@example.test"
            assert row.code and row.code in record["HtmlBody"] and row.code in record["TextBody"]
            item_links = {links.click_read(token) for token in re.findall(r"/r/([^/\"]+)/", record["HtmlBody"])}
            assert item_links == {(row.id, item["item_id"]) for item in row.items}
            # and the one-click unsubscribe headers of RFC 8058, for this message's recipient
            headers = headers_of(record)
            unsubscribe = re.fullmatch(r"<http://127.0.0.1:8000/u/([^/]+)/>", headers["List-Unsubscribe"])
            assert links.unsubscribe_read(unsubscribe[1]) == row.id
            assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert (row.send_status, row.provider_message_id) == (SendStatus.SENT, record["MessageID"])
        # the header's URL works: a mailbox's one-click POST unsubscribes that customer
        record = fake_postmark.outbox[0]
        row = rows[int(record["Metadata"]["promo_message"])]
        url = headers_of(record)["List-Unsubscribe"].strip("<>")
        assert client.post(urlsplit(url).path, {"List-Unsubscribe": "One-Click"}).content == b"unsubscribed"
        assert not Customer.objects.contactable().filter(pk=row.customer_id).exists()
        # and the batch's progress and audit log say it is done
        progress = batch_send_progress(batch=approved)
        assert (progress["sent"], progress["failed"], progress["remaining"]) == (len(rows), 0, 0)
        assert approved.events.filter(action=BatchEvent.Action.SENT, comment=f"{len(rows)} sent, 0 failed").exists()

    def test_the_holdout_and_the_excluded_get_nothing(self, fake_postmark, approved, marketer):
        batch_send_start(batch=approved, by=marketer)
        wait_until_sent(approved)
        others = approved.recipients.exclude(outcome=Recipient.Outcome.RECIPIENT).select_related("customer")
        assert {row.reason for row in others} >= {"holdout", "no_consent", "unsubscribed", "suppressed"}
        sent_to = {record["To"] for record in fake_postmark.outbox}
        assert not sent_to & {row.customer.email for row in others}
        assert not set(sent_keys(fake_postmark)) & {row.id for row in others}
        assert {row.send_status for row in others} == {""}

    def test_a_failing_provider_still_delivers_each_message_once(self, fake_postmark, approved, marketer):
        # given a provider that is busy, fails, times out, and takes a call without answering, then
        # fails at random (seeded)
        failures = ["429", "ok", "500", "timeout", "accept_then_timeout"]
        fake_postmark.configure(fail_next=failures, p_429=0.15, p_500=0.15, seed=5, timeout_seconds=0.3)
        # when the batch is sent, with the sweeper settling what is left in flight
        batch_send_start(batch=approved, by=marketer)
        sweep_until_sent(approved)
        # then every message went out exactly once, though several calls were repeated
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(approved)}
        assert counts(approved) == {SendStatus.SENT: recipients(approved).count()}
        outcomes = {call["outcome"] for call in fake_postmark.calls}
        assert {200, 429, 500, "timeout", "accept_then_timeout"} <= outcomes
        assert recipients(approved).filter(attempts__gt=1).exists()

    def test_rejected_addresses_end_failed_with_the_providers_reason(self, fake_postmark, approved, marketer):
        invalid, inactive = [row.customer.email for row in recipients(approved)[:2]]
        fake_postmark.configure(invalid=[invalid], inactive=[inactive])
        batch_send_start(batch=approved, by=marketer)
        wait_until_sent(approved)
        failed = {row.customer.email: row.send_error for row in recipients(approved).filter(send_status="failed")}
        assert failed.keys() == {invalid, inactive}
        assert failed[invalid] == f"Invalid 'To' address: '{invalid}'."
        assert failed[inactive].startswith("You tried to send to recipient(s) that have been marked as inactive")
        assert counts(approved)[SendStatus.SENT] == recipients(approved).count() - 2
        assert {record["To"] for record in fake_postmark.outbox}.isdisjoint({invalid, inactive})

    def test_the_sweeper_settles_a_call_the_provider_took_without_answering(self, fake_postmark, approved, marketer):
        # given a provider that takes the first call and never answers it
        fake_postmark.configure(fail_next=["accept_then_timeout"], timeout_seconds=0.3)
        batch_send_start(batch=approved, by=marketer)
        wait_until_settled_or_stuck(approved)
        stuck = list(recipients(approved).filter(send_status=SendStatus.CLAIMED))
        assert len(stuck) == 20 and "may have accepted" in stuck[0].send_error
        # when the sweeper runs, the claims being old enough
        age_claims(approved)
        sweep_stuck_messages.delay()
        wait_until_sent(approved)
        # then it found those messages at the provider: sent, with the provider's id, and not sent again
        taken = {int(r["Metadata"]["promo_message"]): r["MessageID"] for r in fake_postmark.outbox}
        for row in stuck:
            row.refresh_from_db()
            assert (row.send_status, row.provider_message_id) == (SendStatus.SENT, taken[row.id])
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(approved)}

    def test_a_worker_killed_mid_call_sends_nobody_twice(self, fake_postmark, celery_worker, approved, marketer):
        from promo_site.celery import app

        # given our own worker as the only one on the `send` queue, and a provider that takes its second
        # call and then hangs
        session_worker = f"test-{os.getpid()}@{socket.gethostname()}"
        app.control.cancel_consumer("send", destination=[session_worker], reply=True)
        doomed = start_worker(f"doomed-{os.getpid()}@%h", fake_postmark)
        try:
            fake_postmark.configure(fail_next=["ok", "accept_then_timeout"], timeout_seconds=30)
            # when the batch is sent and that worker is killed in the middle of the hanging call
            batch_send_start(batch=approved, by=marketer)

            def hanging_call():
                return any(call["outcome"] == "accept_then_timeout" for call in fake_postmark.calls)

            wait_for(hanging_call, timeout=60)
            active = app.control.inspect(destination=[doomed.name], timeout=5).active() or {}
            assert [task["name"] for task in active.get(doomed.name, [])] == ["campaigns.tasks.send_batch_messages"]
            os.killpg(doomed.pid, signal.SIGKILL)
            doomed.wait(timeout=30)
        finally:
            if doomed.poll() is None:
                os.killpg(doomed.pid, signal.SIGKILL)
            app.control.add_consumer("send", destination=[session_worker], reply=True)
        # then its chunk stays claimed until the sweeper finds it at the provider; a new sender does the rest
        # (the holdout draw is random, so the second chunk may hold fewer than 20)
        state, total = counts(approved), recipients(approved).count()
        assert (state[SendStatus.SENT], state[SendStatus.CLAIMED]) == (20, min(20, total - 20))
        age_claims(approved)
        sweep_stuck_messages.delay()
        wait_until_sent(approved)
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(approved)}

    def test_a_frozen_claimants_chunk_is_settled_in_seconds_and_it_posts_nothing_when_it_wakes(
        self, postmark, celery_worker, approved, marketer, settings
    ):
        from promo_site.celery import app

        # given test-sized settings: a post deadline of 16 s, a search delay and a clock margin of 1 s each
        deadline = 16
        settings.SEND_POST_DEADLINE_SECONDS = deadline
        settings.SEND_LOOKUP_DELAY_SECONDS = settings.SEND_CLOCK_MARGIN_SECONDS = 1
        # and our own worker as the only one on the `send` queue, at 4 messages a second: its second chunk of
        # 20 waits 5 s for its tokens after the claim
        session_worker = f"test-{os.getpid()}@{socket.gethostname()}"
        app.control.cancel_consumer("send", destination=[session_worker], reply=True)
        frozen = start_worker(
            f"frozen-{os.getpid()}@%h", postmark, SEND_RATE_PER_SECOND="4", SEND_POST_DEADLINE_SECONDS=str(deadline)
        )
        try:
            # when the batch is sent and that worker is frozen (SIGSTOP) while it holds its second claim
            batch_send_start(batch=approved, by=marketer)

            def second_claim_held():
                state = counts(approved)
                return state[SendStatus.SENT] == 20 and state[SendStatus.CLAIMED] and not age_claims_count(approved)

            wait_for(second_claim_held, timeout=60, interval=0.05)
            os.killpg(frozen.pid, signal.SIGSTOP)
            held = list(recipients(approved).filter(send_status=SendStatus.CLAIMED))
            assert not set(sent_keys(postmark)) & {row.id for row in held}, "frozen after its call: too late"
            claimed_at = held[0].claimed_at
            app.control.add_consumer("send", destination=[session_worker], reply=True)

            # then the sweeper (beat's task, run here every half second) settles the chunk once the deadline,
            # the search delay and the margin have passed: the provider never got it, so it is queued again
            def chunk_settled():
                messages_sweep()
                return not Recipient.objects.filter(pk__in=[row.pk for row in held], claimed_at=claimed_at).exists()

            wait_for(chunk_settled, timeout=120, interval=0.5)
            settled_after = (timezone.now() - claimed_at).total_seconds()
            assert settled_after >= claims_settle_after().total_seconds()  # never before
            # and a new sender (the session's worker) sends it and the rest
            wait_until_sent(approved)
            # when the frozen worker wakes (SIGCONT) and its task goes on
            os.killpg(frozen.pid, signal.SIGCONT)

            def frozen_task_over():
                active = app.control.inspect(destination=[frozen.name], timeout=1).active() or {}
                return frozen.name in active and not active[frozen.name]

            wait_for(frozen_task_over, timeout=60)
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
            os.killpg(frozen.pid, signal.SIGKILL)
            frozen.wait(timeout=30)
            app.control.add_consumer("send", destination=[session_worker], reply=True)
        # then it posted nothing of its stale chunk: every recipient got exactly one message, none is left
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(approved)}
        assert counts(approved) == {SendStatus.SENT: recipients(approved).count()}
        assert {row.attempts for row in Recipient.objects.filter(pk__in=[row.pk for row in held])} == {2}
        ARTIFACTS.mkdir(exist_ok=True)
        figure = {
            "post_deadline_s": deadline,
            "lookup_delay_s": 1,
            "clock_margin_s": 1,
            "settled_after_s": settled_after,
        }
        (ARTIFACTS / "send-claim-settle.json").write_text(json.dumps(figure, indent=1) + "\n")
        print(f"a frozen claimant's chunk was settled {settled_after:.1f} s after its claim: {figure}")

    def test_a_claimant_resumed_after_its_post_deadline_posts_nothing_of_that_claim(
        self, postmark, celery_worker, approved, marketer, settings
    ):
        from promo_site.celery import app

        # given our own worker as the only one on the `send` queue, at 4 messages a second (its second chunk
        # waits 5 s for tokens after the claim), with a post deadline of 16 s, and no sweeper
        deadline = 16
        session_worker = f"test-{os.getpid()}@{socket.gethostname()}"
        app.control.cancel_consumer("send", destination=[session_worker], reply=True)
        frozen = start_worker(
            f"frozen-{os.getpid()}@%h", postmark, SEND_RATE_PER_SECOND="4", SEND_POST_DEADLINE_SECONDS=str(deadline)
        )
        try:
            batch_send_start(batch=approved, by=marketer)

            def second_claim_held():
                state = counts(approved)
                return state[SendStatus.SENT] == 20 and state[SendStatus.CLAIMED] and not age_claims_count(approved)

            # when it is frozen while it holds its second claim, and resumed 2 s after that claim's deadline
            wait_for(second_claim_held, timeout=60, interval=0.05)
            os.killpg(frozen.pid, signal.SIGSTOP)
            held = {row.id: row for row in recipients(approved).filter(send_status=SendStatus.CLAIMED)}
            assert not set(sent_keys(postmark)) & set(held), "frozen after its call: too late"
            claimed_at = next(iter(held.values())).claimed_at
            time_module.sleep(max(0.0, (claimed_at - timezone.now()).total_seconds() + deadline + 2))
            os.killpg(frozen.pid, signal.SIGCONT)
            wait_until_sent(approved)
        finally:
            os.killpg(frozen.pid, signal.SIGCONT)
            os.killpg(frozen.pid, signal.SIGKILL)
            frozen.wait(timeout=30)
            app.control.add_consumer("send", destination=[session_worker], reply=True)
        # then it did not post that chunk: it put it back and sent it under a new claim, once
        assert sent_keys(postmark) == {row.id: 1 for row in recipients(approved)}
        for row in Recipient.objects.filter(pk__in=held):
            assert row.claimed_at > claimed_at and row.attempts == 1  # the stale claim's attempt not counted
        # and every message reached the provider within the post deadline of the claim it was sent under
        claims = dict(recipients(approved).values_list("id", "claimed_at"))
        for record in postmark.outbox:
            received = datetime.fromisoformat(record["SubmittedAt"])
            assert received < claims[int(record["Metadata"]["promo_message"])] + timedelta(seconds=deadline)

    def test_an_unsubscribe_during_the_send_stops_that_customers_message(
        self, fake_postmark, campaign, active_model, marketer, approver
    ):
        # given quiet hours that end in a few seconds for customers in UTC, and half the customers in Tokyo
        now = timezone.now()
        campaign.quiet_hours_start = (now - timedelta(hours=1)).time()
        campaign.quiet_hours_end = (now + timedelta(seconds=12)).time()
        campaign.save()
        every_other = list(Customer.objects.order_by("id").values_list("id", flat=True))[::2]
        Customer.objects.filter(id__in=every_other).update(time_zone="Asia/Tokyo")
        batch = approve(campaign, marketer, approver, worker=True)
        tokyo = recipients(batch).filter(customer__time_zone="Asia/Tokyo")
        # when the batch is sent: Tokyo's messages go at once, the others wait for the end of the quiet hours
        batch_send_start(batch=batch, by=marketer)

        def tokyo_sent():
            return counts(batch)[SendStatus.SENT] == tokyo.count()

        wait_for(tokyo_sent, timeout=30)
        # and a customer still waiting unsubscribes (through an earlier message: this one's link is not out yet)
        leaving = recipients(batch).filter(customer__time_zone="UTC").first()
        assert leaving.send_status == SendStatus.QUEUED, "the worker was too slow for this test's quiet hours"
        customer_unsubscribe(customer=leaving.customer, source="an earlier message")
        wait_until_sent(batch)
        # then their message never went; everyone else's did, once
        leaving.refresh_from_db()
        assert (leaving.send_status, leaving.send_error) == (SendStatus.FAILED, "unsubscribed")
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(batch).exclude(pk=leaving.pk)}

    def test_pause_and_resume_finish_the_batch_without_duplicates(self, fake_postmark, approved, marketer):
        # given a provider that takes the first call and then fails every call
        fake_postmark.configure(fail_next=["ok"], p_500=1.0)
        batch_send_start(batch=approved, by=marketer)

        def first_chunk_sent():
            return counts(approved)[SendStatus.SENT] == 20

        wait_for(first_chunk_sent, timeout=30)
        # when the marketer pauses, the provider recovers, and the marketer resumes
        batch_pause(batch=approved, by=marketer, comment="checking the offer")

        def nothing_in_flight():
            return not counts(approved)[SendStatus.CLAIMED]

        wait_for(nothing_in_flight, timeout=30)
        assert status_of(approved) == Batch.Status.PAUSED and counts(approved)[SendStatus.QUEUED]
        fake_postmark.configure(p_500=0.0)
        batch_resume(batch=approved, by=marketer)
        wait_until_sent(approved)
        # then the batch finished, every message sent exactly once
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(approved)}
        actions = list(approved.events.values_list("action", flat=True))
        assert actions[-4:] == ["sending", "paused", "resumed", "sent"]


def start_worker(name, fake_postmark, **settings):
    """A worker of our own on the `send` queue, in its own process group (so it can be killed or frozen
    whole); `settings` are more environment variables for it."""
    from promo_site.celery import app

    env = dict(
        os.environ,
        DATABASE_URL=_database_url(connection.settings_dict),
        DB_CONN_MAX_AGE="0",
        EMAIL_BACKEND=POSTMARK,
        ANYMAIL_POSTMARK_SERVER_TOKEN=fake_postmark.token,
        ANYMAIL_POSTMARK_API_URL=fake_postmark.url,
        SEND_CHUNK_SIZE="20",
        SEND_RETRY_BASE_SECONDS="0.2",
        **settings,
    )
    command = [sys.executable, "-m", "celery", "-A", "promo_site", "worker", "-Q", "send", "--concurrency", "1"]
    process = subprocess.Popen(
        [*command, "-n", name, "--loglevel", "WARNING"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    expanded = name.replace("%h", socket.gethostname())

    def answers():
        return process.poll() is None and app.control.ping(destination=[expanded], timeout=1.0)

    wait_for(answers, timeout=90)
    process.name = expanded
    return process


class TestTheRateShown:
    """The sending page's rate counts a provider call's burst at the limit, so it never claims more."""

    def test_a_burst_of_one_provider_call_reads_as_the_limit_not_hundreds_a_second(self):
        now = timezone.now()
        burst = [now - timedelta(seconds=2)] * 500  # one Postmark batch call, 2 s after the start
        assert paced_rate(burst, now=now, window=2, limit=50) == pytest.approx(50.0)

    def test_a_steady_send_below_the_limit_reads_as_it_is(self):
        now = timezone.now()
        steady = [now - timedelta(seconds=60) + timedelta(seconds=i / 10) for i in range(600)]
        assert paced_rate(steady, now=now, window=60, limit=50) == pytest.approx(10.0)

    @pytest.mark.parametrize("seed", range(5))
    def test_whatever_the_sends_it_never_exceeds_the_limit(self, seed):
        rng = random.Random(seed)
        now = timezone.now()
        times = sorted(now - timedelta(seconds=rng.uniform(0, 70)) for _ in range(rng.randint(1, 5000)))
        assert paced_rate(times, now=now, window=60, limit=50) <= 50.0
