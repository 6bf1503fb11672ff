import pytest

from campaigns import links
from campaigns.messages import recipient_message
from campaigns.models import Batch, BatchEvent
from campaigns.services.batches import batch_request
from campaigns.services.generation import batch_generate
from campaigns.services.testsend import batch_test_send
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def active_model(celery_worker, shop, settings, admin_user):
    """Saved where the worker loads models from: the worker takes chunks of the generation too."""
    settings.MEDIA_ROOT = celery_worker.media_root
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    return modelversion_activate(version=version, by=admin_user)


def generated(batch):
    """Generate the batch here, or wait for it: the session's worker may have taken the generation task that
    batch_request queued after its commit (or chunks of it), and then batch_generate leaves those to it."""
    batch_generate(batch_id=batch.id)
    wait_for(lambda: Batch.objects.get(pk=batch.id).status == Batch.Status.GENERATED, timeout=120)
    return batch


def test_it_sends_chosen_messages_to_the_seed_list(celery_worker, fake_postmark, campaign, active_model, marketer):
    # given a generated batch and a seed list
    campaign.seed_emails = "qa@promo.example.test\nlead@promo.example.test"
    campaign.save()
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
    generated(batch)
    chosen = list(batch.recipients.filter(outcome="recipient").order_by("id")[:2])
    fake_postmark.reset()
    # when
    batch_test_send(batch=batch, recipient_ids=[r.id for r in chosen], by=marketer)
    # then the worker sends each chosen message, as rendered, to every seed address, and nobody else
    outbox = wait_for(lambda: len(fake_postmark.outbox) >= 2 and fake_postmark.outbox, timeout=60)
    assert sorted(m["Subject"] for m in outbox) == sorted(
        f"[TEST to {r.customer.external_id}] {recipient_message(r)[0]}" for r in chosen
    )
    assert all(m["To"] == "qa@promo.example.test, lead@promo.example.test" for m in outbox)
    assert chosen[0].code in {m["HtmlBody"] for m in outbox if chosen[0].customer.external_id in m["Subject"]}.pop()
    assert batch.events.filter(action=BatchEvent.Action.TEST_SENT, by=marketer).exists()
    # and a seed who follows the unsubscribe link unsubscribes nobody: the link is defused
    assert all(links.unsubscribe_url(r.id) in recipient_message(r)[1] for r in chosen)
    assert not any(links.unsubscribe_url(r.id) in m["HtmlBody"] for r in chosen for m in outbox)
    assert all("/test-link/" in m["HtmlBody"] for m in outbox)


def test_only_recipients_of_the_batch_can_be_test_sent(campaign, active_model, marketer):
    from django.core.exceptions import ValidationError

    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=marketer))
    generated(batch)
    excluded = batch.recipients.exclude(outcome="recipient").first()
    with pytest.raises(ValidationError, match="Not recipients of this batch"):
        batch_test_send(batch=batch, recipient_ids=[excluded.id], by=marketer)
