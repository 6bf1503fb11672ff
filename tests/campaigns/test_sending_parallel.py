"""One batch sent by several senders on two worker processes at once: each chunk claimed by whichever takes it.

Two `celery worker -Q send` processes of the test's own (the session's worker stops taking `send` tasks for the
test), sending through anymail's real Postmark backend to the fake Postmark, in chunks of 20.
"""

import os
import socket
import time

import pytest

from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.services.delivery import batch_send_slice, messages_claim, messages_sweep, senders_per_batch
from campaigns.services.sending import batch_pause, batch_resume, batch_send_start
from promo_site.models import OutboxTask
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from tests.campaigns.conftest import build_shop
from tests.campaigns.test_sending import (
    age_claims,
    approve,
    counts,
    recipients,
    run_of,
    sent_keys,
    start_worker,
    status_of,
)
from tests.conftest import wait_for

SendStatus = Recipient.SendStatus
SENDER = "campaigns.tasks.send_batch_messages"


def queued_senders(batch):
    """(run, lane) of every sender task queued for the batch (the outbox rows: batch id, run, lane)."""
    tasks = OutboxTask.objects.filter(task=SENDER).order_by("id")
    return [tuple(task.args[1:]) for task in tasks if task.args[0] == batch.id]


@pytest.mark.parametrize(("rate", "senders"), [(50, 1), (250, 1), (251, 2), (1000, 4), (100_000, 4)])
def test_a_batch_gets_one_sender_per_sender_rate_of_the_limit_and_at_most_send_parallel(settings, rate, senders):
    settings.SEND_RATE_PER_SECOND, settings.SEND_SENDER_RATE, settings.SEND_PARALLEL = rate, 250, 4
    assert senders_per_batch() == senders


@pytest.mark.django_db
def test_start_and_the_sweepers_restart_queue_a_full_set_of_senders_of_a_new_run(
    campaign, active_model, marketer, approver, settings
):
    settings.SEND_RATE_PER_SECOND, settings.SEND_SENDER_RATE, settings.SEND_PARALLEL = 1000, 250, 3
    # when a batch is sent, its three senders are queued with the start, in its transaction
    batch = batch_send_start(batch=approve(campaign, marketer, approver), by=marketer)
    assert queued_senders(batch) == [(batch.send_run, lane) for lane in range(3)]
    # and when they are all lost, one of them holding a chunk, and the sweeper settles that chunk
    messages_claim(batch_id=batch.id, run=batch.send_run, limit=10)
    age_claims(batch)
    assert messages_sweep() == 10
    # then three senders of the next run are queued (the earlier run's would stop at their next claim)
    run = run_of(batch)
    assert run == batch.send_run + 1
    assert queued_senders(batch)[3:] == [(run, lane) for lane in range(3)]
    assert batch_send_slice(batch_id=batch.id, run=batch.send_run) is None


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestTwoWorkersSendOneBatch:
    @pytest.fixture
    def shop(self, db):
        return build_shop(400)  # about 310 recipients once the holdout and the uncontactable are out

    @pytest.fixture
    def active_model(self, celery_worker, shop, settings, admin_user):
        settings.MEDIA_ROOT = celery_worker.media_root
        version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
        return modelversion_activate(version=version, by=admin_user)

    @pytest.fixture
    def two_workers(self, celery_worker, fake_postmark):
        """Two worker processes of our own on the `send` queue, at 60 messages a second between them (a send of
        about 5 s, so that it can be paused half-way), and the session's worker off that queue meanwhile."""
        from promo_site.celery import app

        fake_postmark.reset()
        session_worker = f"test-{os.getpid()}@{socket.gethostname()}"
        app.control.cancel_consumer("send", destination=[session_worker], reply=True)
        workers = []
        try:
            for index in range(2):
                name = f"parallel{index}-{os.getpid()}@%h"
                workers.append(start_worker(name, fake_postmark, SEND_RATE_PER_SECOND="60"))
            yield workers
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(timeout=30)
            app.control.add_consumer("send", destination=[session_worker], reply=True)

    def test_each_recipient_gets_one_message_the_batch_finishes_once_and_a_pause_stops_every_sender(
        self, fake_postmark, two_workers, campaign, active_model, marketer, approver, settings
    ):
        from promo_site.celery import app

        # given an approved batch of about 310 messages, and a rate that calls for 4 senders
        settings.SEND_RATE_PER_SECOND, settings.SEND_SENDER_RATE, settings.SEND_PARALLEL = 60, 15, 4
        assert senders_per_batch() == 4
        batch = approve(campaign, marketer, approver)
        total = recipients(batch).count()
        assert total > 250
        names = [worker.name for worker in two_workers]

        # when it is sent, both workers run one of its senders at the same time
        batch_send_start(batch=batch, by=marketer)

        def both_sending():
            active = app.control.inspect(destination=names, timeout=1).active() or {}
            return all(any(task["name"] == SENDER for task in active.get(name, [])) for name in names)

        wait_for(both_sending, timeout=60, interval=0.1)

        # and the marketer pauses it half-way
        def a_third_sent():
            return counts(batch)[SendStatus.SENT] >= total // 3

        wait_for(a_third_sent, timeout=60, interval=0.1)
        batch_pause(batch=batch, by=marketer, comment="checking the offer")
        paused_at = batch.events.get(action=BatchEvent.Action.PAUSED).at

        # then every sender stops: the chunks in flight settle, no claim follows the pause, no task runs
        def stopped():
            active = app.control.inspect(destination=names, timeout=1).active() or {}
            return not counts(batch)[SendStatus.CLAIMED] and not any(active.get(name) for name in names)

        wait_for(stopped, timeout=60)
        at_rest = counts(batch)
        time.sleep(2)
        assert counts(batch) == at_rest and at_rest[SendStatus.QUEUED] > 0
        assert status_of(batch) == Batch.Status.PAUSED
        assert not recipients(batch).filter(claimed_at__gt=paused_at).exists()
        assert len(sent_keys(fake_postmark)) == at_rest[SendStatus.SENT]

        # when it is resumed, it finishes
        batch_resume(batch=Batch.objects.get(pk=batch.pk), by=marketer)

        def sent():
            return status_of(batch) == Batch.Status.SENT

        wait_for(sent, timeout=90)
        # then each recipient got exactly one message, and the batch was finished once, by one of its senders
        assert sent_keys(fake_postmark) == {row.id: 1 for row in recipients(batch)}
        assert counts(batch) == {SendStatus.SENT: total}
        actions = list(batch.events.order_by("id").values_list("action", flat=True))
        assert actions[-4:] == ["sending", "paused", "resumed", "sent"] and actions.count("sent") == 1
        assert batch.events.get(action=BatchEvent.Action.SENT).comment == f"{total} sent, 0 failed"
        # and the senders of the run after the resume finished too: nothing is left running
        time.sleep(1)
        active = app.control.inspect(destination=names, timeout=1).active() or {}
        assert not any(active.get(name) for name in names)
