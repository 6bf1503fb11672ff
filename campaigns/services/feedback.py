"""Customers' "not interested" feedback on the items of a message, and what later batches make of it.

A feedback is stored twice, on purpose: as a MessageEvent (kind not_interested) for the campaign's
stats, and as a shop Event (type not_interested, source "promo_site") because that is what the
recommender reads (it imports nothing from campaigns) and what the shop itself may also send through
the API. Exclusions read the shop events, so both kinds of feedback count.

Later batches leave out, per customer, every item they said "not interested" in, and every item of a
category (its full category path, and the paths below it) once they said so about
FEEDBACK_CATEGORY_AFTER (default 2) different items of it.
"""

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from campaigns.models import MessageEvent, Recipient
from campaigns.services import bots
from campaigns.services.tracking import message_was_sent
from shop.models import Event, EventType, Item

SHOP_EVENT_SOURCE = "promo_site"


@dataclass
class Exclusions:
    item_ids: set = field(default_factory=set)
    category_paths: set = field(default_factory=set)


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


def feedback_exclusions(*, customer_ids) -> dict[int, Exclusions]:
    """Per customer with any feedback: the items, and the category paths, to leave out of their messages."""
    rows = (
        Event.objects.filter(customer_id__in=list(customer_ids), type=EventType.NOT_INTERESTED, item__isnull=False)
        .values_list("customer_id", "item_id", "item__category_path")
        .distinct()
    )
    out, per_category = {}, {}
    for customer_id, item_id, path in rows:
        out.setdefault(customer_id, Exclusions()).item_ids.add(item_id)
        if path:
            per_category.setdefault((customer_id, path), set()).add(item_id)
    for (customer_id, path), items in per_category.items():
        if len(items) >= settings.FEEDBACK_CATEGORY_AFTER:
            out[customer_id].category_paths.add(path)
    return out


def feedback_masks(*, customer_ids, item_ids: np.ndarray) -> dict[int, np.ndarray]:
    """Per customer with feedback, a boolean mask over a model's item_ids: True where the item is left out."""
    exclusions = feedback_exclusions(customer_ids=customer_ids)
    if not exclusions:
        return {}
    column = {int(item): n for n, item in enumerate(item_ids)}
    in_category = _columns_by_category({p for e in exclusions.values() for p in e.category_paths}, column)
    masks = {}
    for customer_id, excluded in exclusions.items():
        mask = np.zeros(len(item_ids), dtype=bool)
        mask[[column[i] for i in excluded.item_ids if i in column]] = True
        for path in excluded.category_paths:
            mask[in_category[path]] = True
        masks[customer_id] = mask
    return masks


def _columns_by_category(paths, column):
    out = {path: [] for path in paths}
    if not paths:
        return out
    match = Q()
    for path in paths:
        match |= Q(category_path=path) | Q(category_path__startswith=f"{path} > ")
    for item_id, item_path in Item.objects.filter(match).values_list("id", "category_path"):
        for path in paths:
            if item_id in column and (item_path == path or item_path.startswith(f"{path} > ")):
                out[path].append(column[item_id])
    return out


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
