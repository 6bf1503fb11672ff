"""The right of access and erasure: everything held about one customer, exported or erased, with an audit row.

The shop holds the customer and their events; the stages to its right hold what they did with them (messages,
their events, conversions) and answer through shop.signals.customer_exported / customer_erased, since the
shop never imports them.

Erasure keeps the customer row as a tombstone: the external id stays (so a later event or customer upsert
from the shop finds the erased person instead of creating them again), every personal field is blanked, and
the tombstone is suppressed without consent, so nothing is ever sent to it. Events are kept, pseudonymous
(a customer id without a person), so the statistics and the model's training data keep their counts. The
lines about the customer's rows leave the stored import reports (import_reports_erase); the uploaded files
themselves are kept as they came (they hold the external id, kept anyway, and the rows' event data).
"""

from django.db import transaction
from django.utils import timezone

from shop.models import Customer, CustomerAudit, Event, EventType
from shop.services.imports import import_reports_erase
from shop.signals import customer_erased, customer_exported

CUSTOMER_FIELDS = [
    "external_id",
    "email",
    "name",
    "attributes",
    "demographics",
    "marketing_consent",
    "consent_at",
    "consent_source",
    "unsubscribed_at",
    "suppressed",
    "suppressed_reason",
    "time_zone",
    "erased_at",
    "created_at",
    "updated_at",
]
EVENT_FIELDS = ["type", "item__external_id", "quantity", "value", "discount", "occurred_at", "source", "attributes"]


def customer_export(*, customer_id: int, by) -> dict:
    """Everything held about the customer, as JSON-ready data; writes an audit row saying what was exported."""
    customer = Customer.objects.get(id=customer_id)
    events = list(Event.objects.filter(customer_id=customer_id).order_by("occurred_at", "id").values(*EVENT_FIELDS))
    events = [_renamed(event) for event in events]
    export = {
        "customer": {field: getattr(customer, field) for field in CUSTOMER_FIELDS},
        "events": events,
        "feedback": [event for event in events if event["type"] == EventType.NOT_INTERESTED],
    }
    for _receiver, sections in customer_exported.send(sender="shop", customer_id=customer_id):
        export.update(sections or {})
    counts = {key: len(value) for key, value in export.items() if isinstance(value, list)}
    CustomerAudit.objects.create(customer=customer, action=CustomerAudit.Action.EXPORTED, by=by, detail=counts)
    return export


def customer_erase(*, customer_id: int, by) -> int:
    """Blank the customer's personal data here and in every stage (through customer_erased); returns the audit id."""
    now = timezone.now()
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(id=customer_id)
        Customer.objects.filter(id=customer.id).update(
            email="",
            name="",
            attributes={},
            demographics={},
            marketing_consent=False,
            consent_at=None,
            consent_source="",
            suppressed=True,
            suppressed_reason="erased on request",
            erased_at=customer.erased_at or now,
            updated_at=now,
        )
        detail = {"customer": 1, "import_report_lines": import_reports_erase(external_id=customer.external_id)}
        for _receiver, erased in customer_erased.send(sender="shop", customer_id=customer_id):
            detail.update(erased or {})
        audit = CustomerAudit.objects.create(
            customer=customer, action=CustomerAudit.Action.ERASED, by=by, detail=detail
        )
    return audit.id


def _renamed(event):
    event["item"] = event.pop("item__external_id")
    return event
