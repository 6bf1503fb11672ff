"""Customers' "not interested" feedback on the items of a message, and what later batches make of it.

A feedback is stored twice, on purpose: as a MessageEvent (kind not_interested) for the campaign's
stats, and as a shop Event (type not_interested, source "promo_site") because that is what the
recommender reads (it imports nothing from campaigns) and what the shop itself may also send through
the API. Exclusions read the shop events, so both kinds of feedback count.

What later batches make of it is serving's rule (recommender/serving.py, what a customer may be
shown): every item they said "not interested" in, and every item of a category (its full category
path, and the paths below it) once they said so about FEEDBACK_CATEGORY_AFTER (default 2) different
items of it, are left out.
"""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from campaigns.models import MessageEvent, Recipient
from campaigns.services import bots
from campaigns.services.tracking import message_was_sent
from shop.models import Event, EventType

SHOP_EVENT_SOURCE = "promo_site"


@dataclass
class FeedbackRate:
    campaign_id: int
    delivered: int  # messages whose delivery the provider reported
    not_interested: int  # "not interested" events, bots left out
    rate: float | None  # not_interested / delivered; None before any delivery


def feedback_record(*, recipient: Recipient, item_id: int, user_agent: str = "") -> MessageEvent | None:
    """Store a customer's "not interested" in an item of their message; once per message and item."""
    if not message_was_sent(recipient):
        return None  # a test send or a preview
    verdict = bots.user_agent_verdict(user_agent, kind=MessageEvent.Kind.NOT_INTERESTED, method="POST")
    now, event_id = timezone.now(), f"not_interested:{recipient.id}:{item_id}"
    with transaction.atomic():
        feedback, created = MessageEvent.objects.get_or_create(
            source=MessageEvent.Source.OURS,
            event_id=event_id,
            defaults=dict(
                recipient=recipient,
                kind=MessageEvent.Kind.NOT_INTERESTED,
                occurred_at=now,
                item_id=item_id,
                user_agent=(user_agent or "")[:500],
                is_bot=bool(verdict),
                bot_reason=verdict,
            ),
        )
        if created and not verdict:
            Event.objects.get_or_create(
                source=SHOP_EVENT_SOURCE,
                client_event_id=event_id,
                defaults=dict(
                    customer_id=recipient.customer_id, item_id=item_id, type=EventType.NOT_INTERESTED, occurred_at=now
                ),
            )
    return feedback


def feedback_rate_by_campaign(*, campaign_ids=None) -> dict[int, FeedbackRate]:
    """Per campaign: "not interested" events (bots left out) per delivered message (a selector for the dashboard)."""
    messages = Recipient.objects.filter(outcome=Recipient.Outcome.RECIPIENT)
    if campaign_ids is not None:
        messages = messages.filter(batch__campaign_id__in=list(campaign_ids))
    delivered = dict(
        messages.filter(delivered_at__isnull=False).values_list("batch__campaign_id").annotate(n=Count("id")).order_by()
    )
    feedback = dict(
        MessageEvent.objects.human()
        .filter(kind=MessageEvent.Kind.NOT_INTERESTED, recipient__in=messages)
        .values_list("recipient__batch__campaign_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        campaign_id: FeedbackRate(
            campaign_id,
            delivered.get(campaign_id, 0),
            feedback.get(campaign_id, 0),
            feedback.get(campaign_id, 0) / delivered[campaign_id] if delivered.get(campaign_id) else None,
        )
        for campaign_id in sorted(set(delivered) | set(feedback))
    }
