"""Postmark's tracking webhooks as Postmark documents them, and posting through anymail's real view.

Payload shapes: https://postmarkapp.com/developer/webhooks/webhooks-overview (Delivery, Bounce,
SpamComplaint, Open, Click, SubscriptionChange), the fields anymail's Postmark tracking view reads.
"""

import base64
import itertools
import json
from datetime import UTC

from django.urls import reverse
from django.utils import timezone

WEBHOOK_SECRET = "postmark:correct-horse-battery-staple"
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
_bounce_ids = itertools.count(4323372036854775000)


def stamp(at):
    return (at or timezone.now()).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _common(row, record_type, metadata=True):
    return {
        "RecordType": record_type,
        "MessageStream": "outbound",
        "MessageID": row.provider_message_id,
        "ServerID": 23,
        "Tag": f"campaign-{row.batch.campaign_id}",
        "Metadata": {"promo_message": str(row.id)} if metadata else {},
    }


def delivery(row, at=None, metadata=True):
    return _common(row, "Delivery", metadata) | {
        "Recipient": row.customer.email,
        "DeliveredAt": stamp(at),
        "Details": "smtp;250 2.0.0 OK",
    }


def bounce(row, type_="HardBounce", at=None):
    names = {
        "HardBounce": (1, "Hard bounce", True, "The server was unable to deliver your message (ex: unknown user)."),
        "SoftBounce": (4096, "Soft bounce/Undeliverable", False, "Unable to temporarily deliver this email."),
    }
    code, name, inactive, description = names[type_]
    return _common(row, "Bounce") | {
        "ID": next(_bounce_ids),
        "Type": type_,
        "TypeCode": code,
        "Name": name,
        "Description": description,
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": row.customer.email,
        "From": "promotions@example.test",
        "BouncedAt": stamp(at),
        "DumpAvailable": True,
        "Inactive": inactive,
        "CanActivate": True,
        "Subject": row.subject,
    }


def spam_complaint(row, at=None):
    return _common(row, "SpamComplaint") | {
        "ID": next(_bounce_ids),
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "Description": "The subscriber explicitly marked this email as spam.",
        "Details": "Test spam complaint details",
        "Email": row.customer.email,
        "From": "promotions@example.test",
        "BouncedAt": stamp(at),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": False,
        "Subject": row.subject,
    }


def _engagement(row, record_type, at, user_agent):
    return _common(row, record_type) | {
        "Recipient": row.customer.email,
        "ReceivedAt": stamp(at),
        "Platform": "Desktop",
        "UserAgent": user_agent,
        "OS": {"Name": "Windows 10", "Family": "Windows", "Company": "Microsoft Corporation"},
        "Client": {"Name": "Chrome 124", "Family": "Chrome", "Company": "Google"},
        "Geo": {},
    }


def open_(row, at=None, user_agent=CHROME):
    return _engagement(row, "Open", at, user_agent) | {"FirstOpen": True, "ReadSeconds": 5}


def click(row, url, at=None, user_agent=CHROME):
    return _engagement(row, "Click", at, user_agent) | {"ClickLocation": "HTML", "OriginalLink": url}


def subscription_change(row, reason="ManualSuppression", at=None):
    return _common(row, "SubscriptionChange") | {
        "ChangedAt": stamp(at),
        "Recipient": row.customer.email,
        "Origin": "Recipient",
        "SuppressSending": True,
        "SuppressionReason": reason,
    }


def post_webhook(client, payload, auth=WEBHOOK_SECRET):
    """POST to anymail's Postmark tracking view, with basic auth `user:password` (None: without)."""
    headers = {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    return client.post(
        reverse("anymail:postmark_tracking_webhook"), json.dumps(payload), content_type="application/json", **headers
    )
