"""A batch's generation survives its worker being killed: a real worker, kill -9 in the middle."""

import os
import signal
from pathlib import Path

import pytest

from campaigns.models import Audience, Batch, Campaign, GenerationChunk, Recipient
from campaigns.services.batches import batch_request
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Customer
from tests.campaigns.conftest import build_shop, promotion
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def pool_children(pid):
    """The worker's pool processes (its children), read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_a_generation_whose_worker_is_killed_is_resumed_by_the_redelivered_task(
    celery_worker, settings, admin_user, marketer
):
    # given a shop of 2,500 customers (five chunks of generation), an active model and a campaign
    settings.MEDIA_ROOT = celery_worker.media_root
    build_shop(2500)
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    modelversion_activate(version=version, by=admin_user)
    audience = Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=marketer)
    campaign = Campaign.objects.create(name="Spring", audience=audience, created_by=marketer, holdout_percent=10)
    campaign.promotions.add(promotion())
    # when the worker generates the batch and its pool process is killed after the first chunk
    batch_id = batch_request(campaign=campaign, by=marketer)

    def first_chunk_written():
        batch = Batch.objects.get(pk=batch_id)
        running = batch.chunks.filter(status=GenerationChunk.Status.RUNNING).first()
        return batch.status == Batch.Status.GENERATING and batch.recipients.exists() and running and running.worker

    killed = wait_for(first_chunk_written, timeout=120, interval=0.02)
    for child in pool_children(celery_worker.pid):
        os.kill(child, signal.SIGKILL)

    # then the task comes back (the worker rejects it on the lost process), waits out the dead worker's
    # claim on its chunk, takes the chunk over and finishes it
    def generated():
        return Batch.objects.get(pk=batch_id).status != Batch.Status.GENERATING

    wait_for(generated, timeout=180)
    batch = Batch.objects.get(pk=batch_id)
    assert batch.status == Batch.Status.GENERATED, batch.error
    # (the chunk the killed process held was taken over: its claim's token is a new one)
    assert batch.chunks.count() == 1 and batch.chunks.get().worker != killed
    # every customer exactly once (the unique constraint would have failed a second row), as if never killed
    assert batch.recipients.count() == Customer.objects.count()
    assert batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).count() == batch.summary["recipients"]
    assert list(batch.events.values_list("action", flat=True)) == ["requested", "generated"]
