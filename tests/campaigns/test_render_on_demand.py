"""Messages rendered on demand from the batch's snapshot: checked at generation, sent as approved."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from campaigns.messages import BatchMessages, recipient_message
from campaigns.models import Batch, Campaign, Recipient
from campaigns.services.batches import batch_approve, batch_request
from campaigns.services.delivery import batch_send_slice
from campaigns.services.generation import batch_generate
from campaigns.services.sending import batch_send_start
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Item
from tests.conftest import wait_for
from tests.factories import BatchFactory, RecipientFactory

POSTMARK = "anymail.backends.postmark.EmailBackend"


def generate(campaign, by):
    batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=by))
    batch_generate(batch_id=batch.id)  # a worker may hold chunks of it: then this leaves them to it
    wait_for(lambda: Batch.objects.get(pk=batch.id).status != Batch.Status.GENERATING, timeout=120)
    batch.refresh_from_db()
    assert batch.status == Batch.Status.GENERATED, batch.error
    return batch


def recipients(batch):
    return list(batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT).select_related("customer"))


@pytest.fixture
def postmark(fake_postmark, settings):
    fake_postmark.reset()
    settings.EMAIL_BACKEND = POSTMARK
    settings.ANYMAIL = {"POSTMARK_SERVER_TOKEN": fake_postmark.token, "POSTMARK_API_URL": fake_postmark.url}
    return fake_postmark


@pytest.mark.django_db
class TestTheRenderCheck:
    def test_it_stores_no_body_and_renders_the_same_message_each_time(self, campaign, active_model, marketer):
        batch = generate(campaign, marketer)
        rows = recipients(batch)
        assert rows and not any(r.subject or r.body_html for r in rows)
        assert batch.rendering == Batch.Rendering.ON_DEMAND
        first = [recipient_message(r) for r in rows]
        again = BatchMessages(Batch.objects.get(pk=batch.pk))
        assert [again.render(r) for r in rows] == first
        assert all(r.code in html for r, (_s, html, _t) in zip(rows, first))

    def test_it_records_a_failure_on_exactly_the_rows_whose_message_fails(
        self, campaign, active_model, marketer, approver, settings
    ):
        # given a batch whose messages all render, and an item shown to some recipients but not all
        rows = recipients(generate(campaign, marketer))
        longest = max(len(recipient_message(r)[1].encode()) for r in rows)
        shown = [{e["item_id"] for e in r.items} for r in rows]
        item_id = next(i for s in shown for i in s if 0 < sum(i in t for t in shown) < len(rows))
        # when that item's title grows past what a message may hold, and a new batch is generated
        settings.MESSAGE_MAX_BYTES = longest + 100
        Item.objects.filter(id=item_id).update(title="long " * 55)
        batch = generate(Campaign.objects.get(pk=campaign.pk), marketer)
        # then exactly the recipients shown that item have a render failure, with the reason
        failed = {r.id for r in recipients(batch) if r.render_error}
        with_item = {r.id for r in recipients(batch) if item_id in {e["item_id"] for e in r.items}}
        assert failed == with_item and 0 < len(failed) < len(recipients(batch))
        assert all("longer than" in r.render_error for r in recipients(batch) if r.render_error)
        assert batch.render_failures == len(failed)
        # and approval is refused
        with pytest.raises(PermissionDenied, match="template failed"):
            batch_approve(batch=batch, by=approver)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
class TestWhatIsSentIsWhatWasApproved:
    """Committed transactions: a session's worker, started by earlier tests, may take the generation and the
    sending tasks queued after each commit, so the model is saved where it reads models, and the tests wait
    for the batch's state rather than assume that their own call did the work."""

    @pytest.fixture
    def active_model(self, celery_worker, shop, settings, admin_user):
        settings.MEDIA_ROOT = celery_worker.media_root  # the worker loads the model from where this process saved it
        version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
        return modelversion_activate(version=version, by=admin_user)

    def test_a_later_change_of_the_items_wording_does_not_change_the_messages(
        self, postmark, campaign, active_model, marketer, approver
    ):
        # given an approved batch and its messages as the approver could read them
        batch = batch_approve(batch=generate(campaign, marketer), by=approver)
        approved = {r.id: recipient_message(r) for r in recipients(batch)}
        # when every item is renamed and repriced (an edit that voids no approval) and the batch is sent
        Item.objects.update(title="Renamed", price=999)
        batch = batch_send_start(batch=batch, by=marketer)
        batch_send_slice(batch_id=batch.id, run=batch.send_run)  # beside the worker's senders, if it runs them
        wait_for(lambda: Batch.objects.get(pk=batch.id).status == Batch.Status.SENT, timeout=120)
        # then each message sent is the approved one, word for word
        sent = {int(m["Metadata"]["promo_message"]): m for m in postmark.outbox}
        assert set(sent) == set(approved)
        for row_id, (subject, html, text) in approved.items():
            assert (sent[row_id]["Subject"], sent[row_id]["HtmlBody"]) == (subject, html)
            assert sent[row_id]["TextBody"].startswith(text)
            assert "Renamed" not in html

    def test_a_template_edit_after_approval_voids_it_and_the_old_text_is_never_sent(
        self, postmark, campaign, active_model, marketer, approver
    ):
        # given an approved batch
        batch = batch_approve(batch=generate(campaign, marketer), by=approver)
        # when the campaign's body template changes
        campaign = Campaign.objects.get(pk=campaign.pk)
        campaign.body_template = "<p>Edited after approval {{ promotion.code }}</p>"
        campaign.save()
        # then the approval is voided and the batch cannot be sent
        batch.refresh_from_db()
        assert batch.status == Batch.Status.VOIDED
        with pytest.raises(ValidationError):
            batch_send_start(batch=batch, by=marketer)
        assert not postmark.outbox
        # and its messages still read as generated (the batch's snapshot, not the live campaign)
        assert not any("Edited" in recipient_message(r)[1] for r in recipients(batch))


@pytest.mark.django_db
def test_a_batch_generated_before_keeps_its_stored_bodies():
    # given a batch from before rendering on demand (the migration marks those `stored`)
    batch = BatchFactory(status=Batch.Status.APPROVED, rendering=Batch.Rendering.STORED)
    row = RecipientFactory(batch=batch, subject="Old subject", body_html="<p>Old &amp; body</p>")
    # then its message is the stored one
    assert recipient_message(row) == ("Old subject", "<p>Old &amp; body</p>", "Old & body")
