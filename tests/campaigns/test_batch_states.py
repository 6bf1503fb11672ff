"""The batch state machine: Batch.TRANSITIONS is the whole of it and batch_transition its only door."""

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from campaigns.messages import recipient_message
from campaigns.models import Batch, BatchEvent, Campaign, Recipient
from campaigns.services.batches import BatchStateError, batch_request, batch_transition
from campaigns.services.generation import (
    GENERATION_JOB,
    HELD,
    MAX_REQUEUES,
    batch_generate,
    generations_sweep,
)
from promo_site.models import OutboxTask
from shop.models import Customer

Status = Batch.Status
pytestmark = pytest.mark.django_db


def a_batch(campaign, status):
    number = campaign.batches.count() + 1
    return Batch.objects.create(campaign=campaign, number=number, status=status, seed=1, created_by=campaign.created_by)


def test_every_action_of_the_table_is_an_audit_action_and_every_status_is_reached():
    assert set(Batch.TRANSITIONS) <= set(BatchEvent.Action.values)
    reached = {to for _sources, to in Batch.TRANSITIONS.values()}
    assert reached | {Status.GENERATING} == set(Status.values)


@pytest.mark.parametrize("status", Status.values)
@pytest.mark.parametrize("action", sorted(Batch.TRANSITIONS))
def test_it_does_what_the_table_allows_and_nothing_else(campaign, status, action):
    # given a batch in `status`
    batch = a_batch(campaign, status)
    sources, to = Batch.TRANSITIONS[action]
    # when
    if status in sources:
        moved = batch_transition(batch.id, action, comment="why")
        # then it moved, with its audit row
        assert moved.status == to
        assert list(batch.events.values_list("action", "comment")) == [(action, "why")]
    else:
        with pytest.raises(BatchStateError, match=f"is {Status(status).label}"):
            batch_transition(batch.id, action)
        # then nothing changed, and nothing was recorded
        assert Batch.objects.get(pk=batch.pk).status == status
        assert not batch.events.exists()


def test_a_request_writes_its_generation_to_the_outbox_in_its_own_transaction(campaign, active_model, marketer):
    # when a request is rolled back with the transaction around it
    with pytest.raises(RuntimeError), transaction.atomic():
        batch_request(campaign=campaign, by=marketer)
        raise RuntimeError("the caller's transaction fails")
    # then neither the batch nor its follow-up work remains
    assert not Batch.objects.exists() and not OutboxTask.objects.exists()
    # when it commits, the generation is in the outbox with it
    batch_id = batch_request(campaign=campaign, by=marketer)
    task = OutboxTask.objects.get()
    assert (task.task, task.args) == ("campaigns.tasks.generate_batch", [batch_id])


def test_generation_reads_the_settings_frozen_at_the_request(campaign, active_model, marketer):
    # given a batch requested with 2 items a message, a 20% holdout and the default subject
    Campaign.objects.filter(pk=campaign.pk).update(items_per_message=2)
    batch_id = batch_request(campaign=Campaign.objects.get(pk=campaign.pk), by=marketer)
    # when the campaign changes before the batch is generated (an update: no signal, no new version)
    Campaign.objects.filter(pk=campaign.pk).update(
        items_per_message=6, holdout_percent=0, subject_template="Changed {{ promotion.code }}"
    )
    batch_generate(batch_id=batch_id)
    # then generation used the frozen settings, not the live campaign
    batch = Batch.objects.get(pk=batch_id)
    assert batch.status == Status.GENERATED, batch.error
    rows = batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT)
    assert rows.exists() and all(len(r.items) <= 2 for r in rows)
    assert not any(recipient_message(r)[0].startswith("Changed") for r in rows)
    assert batch.recipients.filter(reason=Recipient.Reason.HOLDOUT).exists()
    assert batch.settings.items_per_message == 2 and batch.settings.holdout_percent == 20


def test_stored_snapshots_of_earlier_releases_read_back():
    # a snapshot as batches stored it before the settings object (no targeting, no target_percent)
    stored = {
        "campaign_version": 3,
        "campaign": {
            "name": "Spring",
            "audience_id": 1,
            "audience_rules": {"match": "all", "rules": []},
            "subject_template": "Hi",
            "body_template": "<p>Hi</p>",
            "items_per_message": 4,
            "exclude_purchased": False,
            "holdout_percent": "10.00",
            "frequency_cap": [3, 7],
            "quiet_hours": ["22:00:00", "07:00:00"],
            "send_at": "2026-12-01T09:00:00+00:00",
            "base_response_rate": "0.0500",
        },
        "promotions": {"7": {"name": "15% off", "version": 2}},
    }
    frozen = Batch(settings_snapshot=stored).settings
    assert (frozen.targeting, str(frozen.target_percent), frozen.quiet_hours_start.hour) == ("response", "100", 22)
    assert [(p.id, p.version) for p in frozen.promotions] == [(7, 2)]
    assert frozen.to_json()["campaign"]["quiet_hours"] == ["22:00:00", "07:00:00"]
    # "exclude purchased" off meant both kinds of item; on, only new ones
    assert frozen.item_kinds == "both"
    stored["campaign"]["exclude_purchased"] = True
    assert Batch(settings_snapshot=stored).settings.item_kinds == "new"


class TestGenerationClaim:
    def test_a_redelivered_task_does_nothing_beside_a_live_generator(self, campaign, active_model, marketer):
        # given a batch whose generation a live worker has claimed (it reported just now)
        batch_id = batch_request(campaign=campaign, by=marketer)
        first = GENERATION_JOB.claim(batch_id)
        # when the broker delivers the task again (its visibility timeout passed) and another worker runs it
        outcome = batch_generate(batch_id=batch_id)
        # then the second did nothing but say so (its task looks again later): no rows, the first holds it
        batch = Batch.objects.get(pk=batch_id)
        assert (outcome, batch.status, batch.worker, batch.recipients.count()) == (HELD, Status.GENERATING, first, 0)

    def test_a_redelivery_takes_over_a_silent_worker_and_resumes(self, campaign, active_model, marketer):
        # given a claimed batch whose worker (and its heartbeat thread) went silent 4 minutes ago
        batch_id = batch_request(campaign=campaign, by=marketer)
        lost = GENERATION_JOB.claim(batch_id)
        Batch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now() - timedelta(minutes=4))
        # when the task is delivered again
        batch_generate(batch_id=batch_id)
        # then the new worker generated it, and the lost one, should it wake, may write nothing more
        batch = Batch.objects.get(pk=batch_id)
        assert batch.status == Status.GENERATED, batch.error
        assert batch.worker != lost and batch.recipients.count() == Customer.objects.count()
        assert not GENERATION_JOB.progress(batch_id, {"phase": "scoring"}, token=lost)
        assert [e.action for e in batch.events.all()] == ["requested", "generated"]

    def test_the_sweeper_requeues_a_generation_whose_worker_is_gone_then_fails_it(
        self, campaign, active_model, marketer
    ):
        # given a generation silent for 11 minutes (its whole worker host went), and a live one
        batch_id = batch_request(campaign=campaign, by=marketer)
        lost = GENERATION_JOB.claim(batch_id)
        Batch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
        other = Campaign.objects.create(name="Other", audience=campaign.audience, created_by=marketer)
        other.promotions.set(campaign.promotions.all())
        fresh_id = batch_request(campaign=other, by=marketer)
        GENERATION_JOB.claim(fresh_id)
        # when the sweeper runs
        assert generations_sweep() == {batch_id: "requeued"}
        # then the lost worker's claim is over, a new task is in the outbox, and the audit log says why
        batch = Batch.objects.get(pk=batch_id)
        assert (batch.status, batch.worker) == (Status.GENERATING, "")
        assert not GENERATION_JOB.progress(batch_id, {"phase": "scoring"}, token=lost)
        assert batch.events.last().action == BatchEvent.Action.REQUEUED
        assert OutboxTask.objects.filter(task="campaigns.tasks.generate_batch", args=[batch_id]).count() == 2
        assert Batch.objects.get(pk=fresh_id).status == Status.GENERATING
        # when the new task resumes it, the batch is generated
        batch_generate(batch_id=batch_id)
        assert Batch.objects.get(pk=batch_id).status == Status.GENERATED
        # and a batch lost MAX_REQUEUES times fails with the reason
        for _ in range(MAX_REQUEUES):
            Batch.objects.filter(pk=fresh_id).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
            assert generations_sweep() == {fresh_id: "requeued"}
        Batch.objects.filter(pk=fresh_id).update(heartbeat_at=timezone.now() - timedelta(minutes=11))
        assert generations_sweep() == {fresh_id: "failed"}
        failed = Batch.objects.get(pk=fresh_id)
        assert failed.status == Status.FAILED and "requeued 3 times" in failed.error
        assert failed.events.last().action == BatchEvent.Action.FAILED


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_keeps_a_long_step_alive(campaign, marketer, active_model):
    # given a claimed batch whose worker is busy in one long step (no progress report)
    batch_id = batch_request(campaign=campaign, by=marketer)
    token = GENERATION_JOB.claim(batch_id)
    Batch.objects.filter(pk=batch_id).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    # when the step runs inside the heartbeat
    with GENERATION_JOB.heartbeat(batch_id, token, every=0.05):
        time.sleep(0.5)
    # then the heartbeat is fresh, and a redelivered task would not take the batch over
    assert timezone.now() - Batch.objects.get(pk=batch_id).heartbeat_at < timedelta(seconds=5)
    assert GENERATION_JOB.claim(batch_id) == ""
