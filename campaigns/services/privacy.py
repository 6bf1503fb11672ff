"""Campaigns' part of the right of access and erasure (shop/services/privacy.py sends the signals).

Export: the customer's messages (every batch they were in, sent or held out, with subject and offer), each
message's events, and the conversions attributed to them. Erasure: the stored subjects and bodies of their
messages (which hold their name and address) and the user agents and provider details of those messages'
events; the rows themselves stay, pseudonymous, for the campaigns' statistics.
"""

from campaigns.models import Conversion, MessageEvent, Recipient

MESSAGE_FIELDS = [
    "id",
    "batch_id",
    "batch__campaign__name",
    "outcome",
    "reason",
    "promotion__name",
    "code",
    "subject",
    "sent_at",
    "delivery_status",
    "delivered_at",
]
MESSAGE_EVENT_FIELDS = ["recipient_id", "kind", "source", "occurred_at", "item__external_id", "user_agent", "detail"]
CONVERSION_FIELDS = ["recipient_id", "batch_id", "rule", "occurred_at", "revenue", "discount"]


def customer_campaign_data(*, customer_id: int) -> dict:
    """The export's campaign sections for one customer."""
    messages = Recipient.objects.filter(customer_id=customer_id).order_by("id")
    events = MessageEvent.objects.filter(recipient__customer_id=customer_id).order_by("occurred_at", "id")
    conversions = Conversion.objects.filter(customer_id=customer_id).order_by("occurred_at", "id")
    names = dict(campaign="batch__campaign__name", promotion="promotion__name")
    return {
        "messages": [_renamed(row, **names) for row in messages.values(*MESSAGE_FIELDS)],
        "message_events": [_renamed(row, item="item__external_id") for row in events.values(*MESSAGE_EVENT_FIELDS)],
        "conversions": list(conversions.values(*CONVERSION_FIELDS)),
    }


def customer_campaign_data_erase(*, customer_id: int) -> dict:
    """Remove the personal data of the customer's messages; returns the rows changed, by kind."""
    messages = Recipient.objects.filter(customer_id=customer_id)
    bodies = messages.update(subject="", body_html="", render_error="", send_error="")
    events = MessageEvent.objects.filter(recipient__customer_id=customer_id).update(user_agent="", detail={})
    return {"message_bodies": bodies, "message_event_details": events}


def _renamed(row, **names):
    for new, old in names.items():
        row[new] = row.pop(old)
    return row
