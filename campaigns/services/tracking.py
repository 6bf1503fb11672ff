"""What happened to a sent message: the provider's tracking webhooks (through anymail) and our own item links.

Provider events arrive on anymail's tracking signal (connected in campaigns/signals.py) after anymail's
view has checked the webhook's basic auth (ANYMAIL_WEBHOOK_SECRET; a failure is HTTP 400 and never
reaches us). Each is stored once as a MessageEvent on (source "provider", event_id): the provider's own
event id when it gives one (Postmark: bounces and spam complaints), otherwise a SHA-256 of the event's
JSON, which is the same when a webhook is delivered again and differs between two real events (an open
or click carries its own time). Only a newly stored event has effects, so a redelivery counts once and
changes nothing. The message is found by our metadata ("promo_message": the Recipient id), or else by
the provider's message id; an event of a message we do not know stores nothing and is logged (anymail
still answers 200, so the provider does not retry it forever).
"""

import hashlib
import json
import logging
import uuid
from urllib.parse import urlsplit

from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from django.core import signing
from django.db import transaction
from django.urls import Resolver404, resolve
from django.utils import timezone

from campaigns import links
from campaigns.models import MessageEvent, Recipient
from campaigns.services import bots
from campaigns.services.unsubscribe import customer_suppress, customer_unsubscribe

log = logging.getLogger(__name__)
Kind = MessageEvent.Kind
Delivery = Recipient.Delivery

# anymail's normalised event types -> ours; other types (queued, sent, subscribed, autoresponded, ...) are ignored.
PROVIDER_KINDS = {
    EventType.DELIVERED: Kind.DELIVERED,
    EventType.BOUNCED: Kind.BOUNCED,
    EventType.REJECTED: Kind.BOUNCED,  # Postmark's bounce records of an invalid, deactivated or blocked address
    EventType.DEFERRED: Kind.DEFERRED,
    EventType.COMPLAINED: Kind.COMPLAINED,
    EventType.OPENED: Kind.OPENED,
    EventType.CLICKED: Kind.CLICKED,
    EventType.UNSUBSCRIBED: Kind.UNSUBSCRIBED,
}
# Postmark bounce types about the address itself: it will never accept mail. A SoftBounce (mailbox full,
# ...) is not one; Postmark also says so by deactivating the address ("Inactive": true).
POSTMARK_PERMANENT = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated"}
# The message's delivery state moves only to the right (Recipient.Delivery).
DELIVERY_ORDER = ["", Delivery.DEFERRED, Delivery.DELIVERED, Delivery.BOUNCED, Delivery.COMPLAINED]
DELIVERY_OF = {
    Kind.DEFERRED: Delivery.DEFERRED,
    Kind.DELIVERED: Delivery.DELIVERED,
    Kind.BOUNCED: Delivery.BOUNCED,
    Kind.COMPLAINED: Delivery.COMPLAINED,
}


def message_was_sent(recipient: Recipient) -> bool:
    """Whether the message went to the provider: links in a test send or a preview record nothing."""
    return recipient.sent_at is not None or recipient.send_status in (
        Recipient.SendStatus.CLAIMED,
        Recipient.SendStatus.SENT,
    )


def provider_event_store(*, event: AnymailTrackingEvent, esp_name: str) -> MessageEvent | None:
    """Store one provider event and apply its effects; None when it is ignored, unknown or a restatement."""
    kind = PROVIDER_KINDS.get(event.event_type)
    if kind is None:
        log.info("%s %s event ignored (message %s)", esp_name, event.event_type, event.message_id)
        return None
    with transaction.atomic():
        recipient = _recipient_locked(event)
        if recipient is None:
            log.warning("%s %s event for an unknown message %s", esp_name, kind, event.message_id)
            return None
        if _restates(event, kind, recipient):
            return None
        stored, created = MessageEvent.objects.get_or_create(
            source=MessageEvent.Source.PROVIDER,
            event_id=_event_id(event, esp_name),
            defaults=_event_fields(event, kind, recipient, esp_name),
        )
        if created:
            _apply(stored, recipient, esp_name)
    return stored if created else None


def click_record(*, recipient_id: int, item_id: int, user_agent: str, method: str = "GET") -> MessageEvent | None:
    """Our tracked item link was followed: store the click (every click is an event) and check for a scanner."""
    with transaction.atomic():
        # The row lock serialises one message's clicks, so a scanner's parallel clicks see each other.
        recipient = Recipient.objects.select_for_update().get(id=recipient_id)
        if not message_was_sent(recipient):
            return None
        verdict = bots.user_agent_verdict(user_agent, kind=Kind.CLICKED, method=method)
        click = MessageEvent.objects.create(
            recipient=recipient,
            kind=Kind.CLICKED,
            source=MessageEvent.Source.OURS,
            event_id=f"click:{uuid.uuid4().hex}",
            occurred_at=timezone.now(),
            item_id=item_id,
            user_agent=(user_agent or "")[:500],
            is_bot=bool(verdict),
            bot_reason=verdict,
        )
        bots.link_scan_flag(recipient=recipient)
    click.refresh_from_db(fields=["is_bot", "bot_reason"])
    return click


def unsubscribe_record(*, recipient: Recipient, user_agent: str) -> MessageEvent | None:
    """The message's unsubscribe link was confirmed (a POST): unsubscribe, and count it once for the message.

    Only a message that went out unsubscribes its customer: the token of a holdout, of a batch still in
    review or of a failed send was never in anyone's mailbox, so whoever holds it is not that customer.
    The page answers the same either way (the view does not ask), so the token says nothing about its row.
    """
    if not message_was_sent(recipient):
        return None
    customer_unsubscribe(customer=recipient.customer, source=f"link in message {recipient.id}")
    event, _created = MessageEvent.objects.get_or_create(
        source=MessageEvent.Source.OURS,
        event_id=f"unsubscribe:{recipient.id}",
        defaults=dict(
            recipient=recipient,
            kind=Kind.UNSUBSCRIBED,
            occurred_at=timezone.now(),
            user_agent=(user_agent or "")[:500],
        ),
    )
    return event


def _recipient_locked(event):
    key = str((event.metadata or {}).get("promo_message", ""))
    rows = Recipient.objects.select_for_update()
    found = rows.filter(id=int(key)).first() if key.isdigit() else None
    if found is None and event.message_id:
        found = rows.filter(provider_message_id=event.message_id).first()
    return found


def _restates(event, kind, recipient):
    """Postmark's SubscriptionChange that follows a bounce or complaint restates it: store it once."""
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    return (
        esp_event.get("RecordType") == "SubscriptionChange"
        and kind in (Kind.BOUNCED, Kind.COMPLAINED)
        and recipient.message_events.filter(source=MessageEvent.Source.PROVIDER, kind=kind).exists()
    )


def _event_id(event, esp_name):
    prefix = esp_name.lower()
    if event.event_id:
        return f"{prefix}:{event.event_id}"
    payload = json.dumps(event.esp_event, sort_keys=True, separators=(",", ":"), default=str)
    return f"{prefix}:sha256:{hashlib.sha256(payload.encode()).hexdigest()}"


def _event_fields(event, kind, recipient, esp_name):
    verdict = bots.user_agent_verdict(event.user_agent, kind=kind) if kind in (Kind.OPENED, Kind.CLICKED) else ""
    detail = {
        "esp": esp_name,
        "event_type": event.event_type,
        "description": event.description or "",
        "mta_response": event.mta_response or "",
    }
    if kind == Kind.BOUNCED:
        detail.update(bounce_type=_bounce_type(event), permanent=_permanent(event, esp_name))
    if event.click_url:
        detail["url"] = event.click_url
    return dict(
        recipient=recipient,
        kind=kind,
        occurred_at=event.timestamp or timezone.now(),
        item_id=_clicked_item(event.click_url, recipient) if kind == Kind.CLICKED else None,
        user_agent=(event.user_agent or "")[:500],
        is_bot=bool(verdict),
        bot_reason=verdict,
        detail=detail,
    )


def _bounce_type(event):
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    return esp_event.get("Type") or esp_event.get("SuppressionReason") or event.reject_reason or ""


def _permanent(event, esp_name):
    if esp_name == "Postmark":
        return _bounce_type(event) in POSTMARK_PERMANENT or event.esp_event.get("Inactive") is True
    # Other providers report temporary failures as "deferred"; their bounces name the address.
    return event.reject_reason in (RejectReason.BOUNCED, RejectReason.INVALID)


def _clicked_item(url, recipient):
    """The item behind a provider-tracked click on one of our own item links, if it is one."""
    try:
        match = resolve(urlsplit(url or "").path)
        recipient_id, item_id = links.click_read(match.kwargs["token"]) if match.url_name == "click" else (0, 0)
    except (Resolver404, signing.BadSignature, KeyError):
        return None
    return item_id if recipient_id == recipient.id else None


def _apply(stored, recipient, esp_name):
    """A new event's effects: the message's delivery state, suppression, unsubscribing, the scanner check."""
    kind = stored.kind
    new_state = DELIVERY_OF.get(kind)
    if new_state and DELIVERY_ORDER.index(new_state) > DELIVERY_ORDER.index(recipient.delivery_status):
        recipient.delivery_status = new_state
    if kind == Kind.DELIVERED and recipient.delivered_at is None:
        recipient.delivered_at = stored.occurred_at
    recipient.save(update_fields=["delivery_status", "delivered_at"])
    if kind == Kind.BOUNCED and stored.detail["permanent"]:
        reason = f"hard bounce ({stored.detail['bounce_type']}) of message {recipient.id}"
        customer_suppress(customer_id=recipient.customer_id, reason=reason)
    elif kind == Kind.COMPLAINED:
        customer_suppress(customer_id=recipient.customer_id, reason=f"spam complaint about message {recipient.id}")
    elif kind == Kind.UNSUBSCRIBED:
        customer_unsubscribe(customer=recipient.customer, source=f"{esp_name} (message {recipient.id})")
    if kind in (Kind.DELIVERED, Kind.CLICKED):
        bots.link_scan_flag(recipient=recipient)
