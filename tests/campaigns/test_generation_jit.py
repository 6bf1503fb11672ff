"""A chunk of generation runs without PostgreSQL's JIT (campaigns/services/generation.py, _no_jit)."""

import pytest
from django.db import connection

from campaigns.models import Batch
from campaigns.services.batches import batch_request
from campaigns.services.generation import Generator
from shop.models import Customer


def jit():
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_chunk_is_generated_with_jit_off(campaign, active_model, marketer):
    if connection.vendor != "postgresql":
        pytest.skip("JIT is PostgreSQL's")
    # given a batch to generate
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
    ids = sorted(Customer.objects.values_list("id", flat=True))
    seen = []
    # when its customers are generated
    Generator(batch).run(ids[0], ids[-1], progress=lambda done: None, hold=lambda: seen.append(jit()))
    # then each chunk's transaction ran with JIT off (SET LOCAL: until the transaction ends, here the test's)
    assert seen and set(seen) == {"off"}
    assert batch.recipients.count() == len(ids)
