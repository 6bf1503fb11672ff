"""A batch's generation in chunks that any number of workers take.

The batch's audience is planned once as chunks of GENERATION_CHUNK_CUSTOMERS customers, each a range of
customer ids (campaigns.GenerationChunk). A worker claims a chunk with a conditional UPDATE that writes its
token; it reports after every sub-chunk of customers (the chunk's `done` and heartbeat, and the batch's
progress and heartbeat), and locks its chunk row inside each sub-chunk's transaction to make sure it still
holds it. A chunk whose worker has been silent for GENERATION_TAKEOVER_SECONDS is claimed by the next worker
that asks, which resumes after the rows already written (the unique (batch, customer) constraint makes a
second row for a customer impossible). The tasks carry only (batch id, chunk number).
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from campaigns.audiences import audience_query
from campaigns.models import Batch, GenerationChunk
from promo_site.jobs import heartbeat_thread

Status = GenerationChunk.Status
log = logging.getLogger(__name__)


def chunks_plan(batch, *, size=None):
    """Cut the batch's audience into chunks of `size` customers (once: a later call finds them). Returns the
    number of chunks. The audience's ids are read by a server-side cursor: memory stays flat."""
    if GenerationChunk.objects.filter(batch=batch).exists():
        return GenerationChunk.objects.filter(batch=batch).count()
    size = size or settings.GENERATION_CHUNK_CUSTOMERS
    ids = audience_query(batch.settings.audience_rules).order_by("id").values_list("id", flat=True)
    chunks, first, last, count = [], None, None, 0
    for customer_id in ids.iterator(chunk_size=10_000):
        if count == size:
            chunks.append(GenerationChunk(batch=batch, number=len(chunks), first_customer_id=first,
                                          last_customer_id=last, customers=count))  # fmt: skip
            first, count = None, 0
        first = customer_id if first is None else first
        last, count = customer_id, count + 1
    if count:
        chunks.append(GenerationChunk(batch=batch, number=len(chunks), first_customer_id=first,
                                      last_customer_id=last, customers=count))  # fmt: skip
    GenerationChunk.objects.bulk_create(chunks, ignore_conflicts=True)  # a racing planner wrote the same ones
    return len(chunks)


def _takeover_cutoff():
    return timezone.now() - timedelta(seconds=settings.GENERATION_TAKEOVER_SECONDS)


def chunk_claim(batch_id, *, token, number=None):
    """Claim the batch's chunk `number` (else its first claimable one): queued, or running with a silent
    worker. Returns the chunk, or None when there is none to claim."""
    claimable = GenerationChunk.objects.filter(batch_id=batch_id).filter(
        Q(status=Status.QUEUED) | Q(status=Status.RUNNING, heartbeat_at__lt=_takeover_cutoff())
    )
    if number is not None:
        claimable = claimable.filter(number=number)
    now = timezone.now()
    with transaction.atomic():
        chunk = claimable.select_for_update(skip_locked=True).order_by("number").first()
        if chunk is None:
            return None
        GenerationChunk.objects.filter(id=chunk.id).update(status=Status.RUNNING, worker=token, heartbeat_at=now)
    chunk.status, chunk.worker, chunk.heartbeat_at = Status.RUNNING, token, now
    return chunk


def chunk_held(chunk, token):
    """Inside a sub-chunk's transaction: lock the chunk row; False when another worker took it over."""
    return GenerationChunk.objects.select_for_update().filter(id=chunk.id, worker=token, status=Status.RUNNING).exists()


def chunk_report(chunk, token, done):
    """The chunk's progress and heartbeat, and the batch's (the sum over its chunks). False when the chunk is
    no longer this worker's or the batch no longer generating: its worker should stop."""
    now = timezone.now()
    mine = GenerationChunk.objects.filter(id=chunk.id, worker=token, status=Status.RUNNING)
    if not mine.update(done=done, heartbeat_at=now):
        return False
    totals = GenerationChunk.objects.filter(batch_id=chunk.batch_id).aggregate(done=Sum("done"), total=Sum("customers"))
    progress = {"phase": "generating", "done": totals["done"] or 0, "total": totals["total"] or 0}
    return bool(
        Batch.objects.filter(id=chunk.batch_id, status=Batch.Status.GENERATING).update(
            progress=progress, heartbeat_at=now
        )
    )


def chunk_finish(chunk, token):
    return bool(
        GenerationChunk.objects.filter(id=chunk.id, worker=token, status=Status.RUNNING).update(
            status=Status.DONE, finished_at=timezone.now()
        )
    )


def chunks_left(batch_id):
    """{"open": chunks not done, "chunks": all}: the batch is generated once none is open."""
    return GenerationChunk.objects.filter(batch_id=batch_id).aggregate(
        open=Count("id", filter=~Q(status=Status.DONE)), chunks=Count("id")
    )


def chunk_heartbeat(chunk, token):
    """Keep the chunk's heartbeat fresh from a thread (every third of the takeover time) while its worker
    generates it: a sub-chunk that takes long on a loaded host (a model's first call, a big catalogue) is not
    mistaken for a lost worker. It writes only while the claim holds."""
    mine = GenerationChunk.objects.filter(id=chunk.id, worker=token, status=Status.RUNNING)
    return heartbeat_thread(
        lambda: mine.update(heartbeat_at=timezone.now()), settings.GENERATION_TAKEOVER_SECONDS / 3, f"chunk-{chunk.id}"
    )
