"""The frequency cap (campaigns/eligibility.py) counted per customer gives the set the chunk-wide query gave."""

import random
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db.models import Count, Q
from django.utils import timezone

from campaigns.eligibility import COMMITTED, Eligibility
from campaigns.models import Batch, Recipient
from tests.factories import BatchFactory, CustomerFactory, RecipientFactory

SendStatus = Recipient.SendStatus


def capped_before(batch, customer_ids, days, cap):
    """The cap as one query over the chunk's customers (main at 1fe1a23): the reference."""
    since = timezone.now() - timedelta(days=days)
    counted = (
        Recipient.objects.filter(customer_id__in=customer_ids, outcome=Recipient.Outcome.RECIPIENT)
        .filter(Q(batch__status__in=COMMITTED) | Q(send_status=SendStatus.SENT))
        .exclude(batch=batch)
        .exclude(send_status=SendStatus.FAILED)
        .filter(Q(sent_at__gte=since) | Q(sent_at__isnull=True, batch__decided_at__gte=since))
        .values("customer_id")
        .annotate(n=Count("id"))
        .filter(n__gte=cap)
    )
    return {row["customer_id"] for row in counted}


@pytest.mark.django_db
def test_the_cap_per_customer_is_the_chunk_wide_querys_on_random_histories():
    # given customers with messages in batches of every status, sent, failed, queued, old and new
    rng = random.Random(15)
    now = timezone.now()
    customers = CustomerFactory.create_batch(40)
    batches = [
        BatchFactory(status=rng.choice(list(Batch.Status)), decided_at=rng.choice([None, now - timedelta(days=d)]))
        for d in (1, 3, 6, 9, 20, 2, 4, 8)
    ]
    this = batches[0]
    for customer in customers:
        for batch in rng.sample(batches, rng.randrange(0, len(batches))):
            RecipientFactory(
                batch=batch,
                customer=customer,
                outcome=rng.choice([Recipient.Outcome.RECIPIENT] * 3 + [Recipient.Outcome.EXCLUDED]),
                send_status=rng.choice([SendStatus.SENT, SendStatus.FAILED, ""]),
                sent_at=rng.choice([None, now - timedelta(days=rng.randrange(0, 15))]),
            )
    ids = [c.id for c in customers]
    for days, cap in ((7, 1), (7, 2), (3, 1), (14, 3), (30, 0)):
        eligibility = Eligibility(SimpleNamespace(id=this.id, pk=this.pk, settings=None))
        eligibility.batch = this
        eligibility.settings = SimpleNamespace(frequency_cap_days=days, frequency_cap_messages=cap)
        # when / then
        want = capped_before(this, ids, days, cap)
        assert eligibility._capped(ids) == want
        assert eligibility._capped(ids[:7]) == want & set(ids[:7])
    assert capped_before(this, ids, 7, 1) and capped_before(this, ids, 7, 1) != set(ids)
