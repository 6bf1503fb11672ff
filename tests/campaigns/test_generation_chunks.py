"""A batch's generation in chunks: any worker takes any chunk, each customer once, a silent chunk taken over."""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Batch, GenerationChunk
from campaigns.services.batches import batch_request
from campaigns.services.generation import HELD, batch_chunk_generate, batch_generate
from campaigns.services.generation_chunks import chunk_claim
from promo_site.models import OutboxTask
from shop.models import Customer

pytestmark = pytest.mark.django_db


@pytest.fixture
def planned(campaign, active_model, marketer, settings):
    """A batch of the 60-customer shop planned as 3 chunks of 20, none generated (the planner's slice is 0)."""
    settings.GENERATION_CHUNK_CUSTOMERS = 20
    batch_id = batch_request(campaign=campaign, by=marketer)
    batch_generate(batch_id=batch_id, slice_seconds=0)
    return Batch.objects.get(pk=batch_id)


def test_the_planner_cuts_the_audience_into_ranges_and_queues_a_task_each(planned):
    chunks = list(planned.chunks.all())
    ids = sorted(Customer.objects.values_list("id", flat=True))
    assert [(c.first_customer_id, c.last_customer_id, c.customers) for c in chunks] == [
        (ids[0], ids[19], 20), (ids[20], ids[39], 20), (ids[40], ids[59], 20)
    ]  # fmt: skip
    tasks = OutboxTask.objects.filter(task="campaigns.tasks.generate_batch_chunk")
    assert sorted(t.args for t in tasks) == [[planned.id, 0], [planned.id, 1], [planned.id, 2]]
    assert planned.status == Batch.Status.GENERATING and not planned.recipients.exists()


def test_chunks_taken_in_any_order_give_every_customer_once_and_the_last_finishes_the_batch(planned):
    # when workers take the chunks in another order than planned
    for number in (2, 0):
        assert batch_chunk_generate(batch_id=planned.id, number=number) is None
        assert Batch.objects.get(pk=planned.id).status == Batch.Status.GENERATING
    assert Batch.objects.get(pk=planned.id).progress["done"] == 40
    batch_chunk_generate(batch_id=planned.id, number=1)
    # then the batch is generated once, with a row for each customer
    batch = Batch.objects.get(pk=planned.id)
    assert batch.status == Batch.Status.GENERATED, batch.error
    assert sorted(batch.recipients.values_list("customer_id", flat=True)) == sorted(
        Customer.objects.values_list("id", flat=True)
    )
    assert list(batch.events.values_list("action", flat=True)) == ["requested", "generated"]
    assert batch.summary["total"] == 60 and batch.progress == {"phase": "done", "done": 60, "total": 60}
    # and a redelivered task of a done chunk does nothing
    assert batch_chunk_generate(batch_id=planned.id, number=1) is None


def test_a_chunk_held_by_a_live_worker_waits_and_a_silent_one_is_taken_over(planned, settings):
    # given chunk 0 claimed by a worker that went silent
    chunk = chunk_claim(planned.id, token="dead-worker", number=0)
    assert chunk is not None and chunk_claim(planned.id, token="other", number=0) is None
    # then while its heartbeat is fresh, another task for it looks again later
    assert batch_chunk_generate(batch_id=planned.id, number=0) == HELD
    # when it has been silent past the takeover time
    old = timezone.now() - timedelta(seconds=settings.GENERATION_TAKEOVER_SECONDS + 1)
    GenerationChunk.objects.filter(id=chunk.id).update(heartbeat_at=old)
    assert batch_chunk_generate(batch_id=planned.id, number=0) is None
    # then the chunk is done by the new worker, each of its customers once
    chunk.refresh_from_db()
    assert (chunk.status, chunk.done) == (GenerationChunk.Status.DONE, 20)
    assert chunk.worker != "dead-worker"
    in_chunk = planned.recipients.filter(
        customer_id__gte=chunk.first_customer_id, customer_id__lte=chunk.last_customer_id
    )
    assert in_chunk.count() == in_chunk.values("customer_id").distinct().count() == 20
