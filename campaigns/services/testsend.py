"""Test sends: chosen recipients' messages, exactly as generated, to the campaign's seed list of internal addresses."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.urls import reverse
from django.utils.html import escape

from campaigns import links
from campaigns.messages import BatchMessages
from campaigns.models import Batch, BatchEvent, Recipient
from campaigns.rendering import html_to_text
from promo_site.outbox import outbox_enqueue

MAX_TEST_RECIPIENTS = 20


def batch_test_send(*, batch: Batch, recipient_ids, by):
    """Validate and queue a test send; returns the seed addresses it goes to."""
    if not by.has_perm("campaigns.change_batch"):
        raise PermissionDenied("You may not make test sends.")
    recipient_ids = sorted({int(r) for r in recipient_ids})
    if not recipient_ids:
        raise ValidationError("Choose at least one recipient whose message to send as a test.")
    if len(recipient_ids) > MAX_TEST_RECIPIENTS:
        raise ValidationError(f"At most {MAX_TEST_RECIPIENTS} recipients per test send.")
    found = Recipient.objects.filter(batch=batch, id__in=recipient_ids, outcome=Recipient.Outcome.RECIPIENT)
    missing = set(recipient_ids) - set(found.values_list("id", flat=True))
    if missing:
        raise ValidationError(f"Not recipients of this batch: {', '.join(map(str, sorted(missing)))}.")
    broken = found.exclude(render_error="").values_list("id", flat=True)
    if broken:
        raise ValidationError(f"These messages failed to render: {', '.join(map(str, broken))}.")
    seeds = batch.campaign.seed_list()
    if not seeds:
        raise ValidationError("The campaign has no seed addresses and TEST_SEND_EMAILS is empty.")
    with transaction.atomic():
        BatchEvent.objects.create(
            batch=batch,
            action=BatchEvent.Action.TEST_SENT,
            by=by,
            comment=f"recipients {', '.join(map(str, recipient_ids))} to {', '.join(seeds)}",
        )
        outbox_enqueue("campaigns.tasks.send_test_messages", batch.id, recipient_ids, seeds)
    return seeds


def test_messages_send(*, batch_id, recipient_ids, seeds):
    """The task's body: one message per chosen recipient to every seed address."""
    rows = Recipient.objects.filter(batch_id=batch_id, id__in=recipient_ids).select_related("customer")
    render = BatchMessages(Batch.objects.get(id=batch_id)).render
    messages = []
    for row in rows:
        subject, html, _text = render(row)
        html = _defused(row, html)
        message = EmailMultiAlternatives(
            subject=f"[TEST to {row.customer.external_id}] {subject}",
            body=html_to_text(html),
            to=seeds,
            headers={"X-Promo-Test": f"batch {batch_id} recipient {row.id}"},
        )
        message.attach_alternative(html, "text/html")
        messages.append(message)
    with get_connection() as connection:
        connection.send_messages(messages)
    return len(messages)


def _defused(row, html):
    """The message with its unsubscribe and "not interested" links pointing at a harmless page.

    A test send goes to internal addresses; someone there following those links must not unsubscribe
    the real customer or tell the recommender they dislike an item. Item links stay as they are: a
    click on a message that was not sent records nothing.
    """
    disabled = settings.SITE_URL.rstrip("/") + reverse("campaigns:test_link")
    real = [links.unsubscribe_url(row.id)] + [links.not_interested_url(row.id, e["item_id"]) for e in row.items]
    for url in real:
        html = html.replace(url, disabled).replace(escape(url), disabled)
    return html
