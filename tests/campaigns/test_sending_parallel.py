"""One batch sent by several senders on two worker processes at once: each chunk claimed by whichever takes it.

Two `celery worker -Q send` processes of the test's own (the session's worker stops taking `send` tasks for the
test), sending through anymail's real Postmark backend to the fake Postmark, in chunks of 20.
"""

import os
import socket
import time

import pytest

from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.services.delivery import senders_per_batch
from campaigns.services.sending import batch_pause, batch_resume, batch_send_start
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from tests.campaigns.conftest import build_shop
from tests.campaigns.test_sending import approve, counts, recipients, sent_keys, start_worker, status_of
from tests.conftest import wait_for

SendStatus = Recipient.SendStatus
SENDER = "campaigns.tasks.send_batch_messages"


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
