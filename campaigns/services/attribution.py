"""Attribution: which message earned a shop purchase or coupon redemption (one Conversion per event).

Rules, first match wins (windows are settings, see docs/ARCHITECTURE.md, "Attribution"):

1. code: the event's attributes carry a code ("coupon_code" or "code") that a message sent to the same
   customer before the event carried; the latest such message.
2. click: the customer's last human (not bot) click on a message in the ATTRIBUTION_CLICK_DAYS before it.
3. delivery: the last message delivered to the customer in the ATTRIBUTION_DELIVERY_DAYS before it. A
   message that has no delivery or bounce event at all (a provider that reports no deliveries) counts as
   delivered when it was sent (Recipient.sent_at).

Windows include both edges: a click exactly 7 days before the purchase counts, a second more does not.
Runs as Celery work (campaigns.tasks): for the id range of each committed event write, and as a sweep
over recent events. Each page of events is attributed in one transaction holding an advisory lock, so
two runs never attribute the same event (Conversion's one-to-one on the event is the last line).
"""

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Min, Q

from campaigns.models import Conversion, MessageEvent, Promotion, Recipient
from promo_site.demo import click_window, delivery_window
from shop.models import Event, EventType, Item

PAGE = 1000  # events per transaction
CONVERTING = (EventType.PURCHASE, EventType.COUPON_REDEMPTION)
CODE_KEYS = ("coupon_code", "code")
LOCK_KEY = 6_000_001  # pg_advisory_xact_lock key of attribution
Kind = MessageEvent.Kind
MESSAGE_FIELDS = ("id", "customer_id", "batch_id", "code", "sent_at", "promotion_id")


@dataclass
class AttributionResult:
    examined: int = 0
    attributed: int = 0
    by_rule: dict = field(default_factory=lambda: defaultdict(int))
    batch_ids: set = field(default_factory=set)


def event_code(attributes):
    """The coupon code an event names, normalised for comparison, or ''."""
    for key in CODE_KEYS:
        value = (attributes or {}).get(key)
        if isinstance(value, (str, int)) and str(value).strip():
            return str(value).strip().upper()
    return ""


def conversion_amounts(event, item_cost):
    """(revenue, discount, margin) of an event.

    revenue is what the customer paid (Event.value) and discount what the offer cost the shop. margin is
    the margin at list price, as the expected-value formula of generation counts it: list price
    (value + discount) minus the item's cost x quantity, or DEFAULT_MARGIN_RATE x list price without a
    cost. Profit is then margin - discount, which is what the shop really earned (value - cost).
    """
    revenue = Decimal(event.value or 0)
    discount = Decimal(event.discount or 0)
    list_price = revenue + discount
    if item_cost is not None:
        margin = list_price - Decimal(item_cost) * event.quantity
    else:
        margin = list_price * Decimal(str(settings.DEFAULT_MARGIN_RATE))
    return revenue, discount, margin.quantize(Decimal("0.01"))


def conversions_attribute(*, first_id=None, last_id=None, since=None):
    """Attribute unattributed purchases and redemptions with ids in [first_id, last_id] (either open),
    or, with `since`, those that occurred since then. Idempotent; returns an AttributionResult."""
    events = Event.objects.filter(type__in=CONVERTING, conversion__isnull=True)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
        first_id = max(first_id or 0, Event.objects.filter(occurred_at__gte=since).aggregate(m=Min("id"))["m"] or 0)
    if last_id is not None:
        events = events.filter(id__lte=last_id)
    result, cursor = AttributionResult(), (first_id or 1) - 1
    while True:
        with transaction.atomic():
            _lock()
            page = list(events.filter(id__gt=cursor).order_by("id")[:PAGE])
            if not page:
                return result
            cursor = page[-1].id
            _attribute_page(page, result)


def _lock():
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])


def _attribute_page(events, result):
    result.examined += len(events)
    evidence = _Evidence(events)
    costs = dict(Item.objects.filter(id__in={e.item_id for e in events if e.item_id}).values_list("id", "cost"))
    conversions = []
    for event in events:
        found = evidence.best(event)
        if found is None:
            continue
        rule, message = found
        revenue, discount, margin = conversion_amounts(event, costs.get(event.item_id))
        conversions.append(
            Conversion(
                event_id=event.id,
                recipient_id=message["id"],
                batch_id=message["batch_id"],
                customer_id=event.customer_id,
                rule=rule,
                occurred_at=event.occurred_at,
                revenue=revenue,
                discount=discount,
                margin=margin,
            )
        )
    Conversion.objects.bulk_create(conversions)
    _count_redemptions(conversions, evidence)
    for conversion in conversions:
        result.by_rule[conversion.rule] += 1
        result.batch_ids.add(conversion.batch_id)
    result.attributed += len(conversions)


def _count_redemptions(conversions, evidence):
    """Raise the promotions' used budget for code-attributed conversions, with update(): a save() of the
    promotion would count as an edit and void approvals."""
    spent = defaultdict(lambda: [0, Decimal(0)])
    for conversion in conversions:
        promotion_id = evidence.messages[conversion.recipient_id]["promotion_id"]
        if conversion.rule == Conversion.Rule.CODE and promotion_id:
            spent[promotion_id][0] += 1
            spent[promotion_id][1] += conversion.discount
    for promotion_id, (count, discount) in spent.items():
        Promotion.objects.filter(id=promotion_id).update(
            redemptions_used=F("redemptions_used") + count, discount_used=F("discount_used") + discount
        )


class _Evidence:
    """The messages, clicks and deliveries of one page's customers, looked up once per page."""

    def __init__(self, events):
        self.customers = customers = {e.customer_id for e in events}
        earliest = min(e.occurred_at for e in events)
        latest = max(e.occurred_at for e in events)
        widest = max(click_window(), delivery_window())
        rows = Recipient.objects.filter(
            Q(sent_at__gte=earliest - widest) | ~Q(code=""),
            customer_id__in=customers,
            outcome=Recipient.Outcome.RECIPIENT,
            send_status=Recipient.SendStatus.SENT,
            sent_at__lte=latest,
        ).values(*MESSAGE_FIELDS)
        self.messages = {row["id"]: row for row in rows}
        self.codes = defaultdict(list)  # (customer, CODE) -> [message]
        for row in self.messages.values():
            if row["code"]:
                self.codes[(row["customer_id"], row["code"].strip().upper())].append(row)
        self.clicks = self._touches([Kind.CLICKED], earliest - click_window(), latest)
        self.deliveries = self._touches([Kind.DELIVERED], earliest - delivery_window(), latest)
        self._add_sent_without_delivery_reports()

    def _touches(self, kinds, start, end):
        """customer -> [(time, message)] of human events of these kinds in [start, end].

        Looked up by customer, not among the messages above: a click may come long after the send.
        """
        found = defaultdict(list)
        rows = MessageEvent.objects.filter(
            recipient__customer_id__in=self.customers,
            kind__in=kinds,
            is_bot=False,
            occurred_at__gte=start,
            occurred_at__lte=end,
        ).values_list(*[f"recipient__{name}" for name in MESSAGE_FIELDS], "occurred_at")
        for *values, at in rows:
            row = dict(zip(MESSAGE_FIELDS, values))
            message = self.messages.setdefault(row["id"], row)
            found[message["customer_id"]].append((at, message))
        return found

    def _add_sent_without_delivery_reports(self):
        sent = [m for m in self.messages.values() if m["sent_at"] is not None]
        reported = set(
            MessageEvent.objects.filter(
                recipient_id__in=[m["id"] for m in sent], kind__in=[Kind.DELIVERED, Kind.BOUNCED]
            ).values_list("recipient_id", flat=True)
        )
        for message in sent:
            if message["id"] not in reported:
                self.deliveries[message["customer_id"]].append((message["sent_at"], message))

    def best(self, event):
        """(rule, message) for an event, or None."""
        code = event_code(event.attributes)
        if code:
            sent = [m for m in self.codes.get((event.customer_id, code), ()) if m["sent_at"] <= event.occurred_at]
            if sent:
                return Conversion.Rule.CODE, max(sent, key=lambda m: (m["sent_at"], m["id"]))
        for rule, touches, window in (
            (Conversion.Rule.CLICK, self.clicks, click_window()),
            (Conversion.Rule.DELIVERY, self.deliveries, delivery_window()),
        ):
            inside = [
                (at, m["id"], m)
                for at, m in touches.get(event.customer_id, ())
                if event.occurred_at - window <= at <= event.occurred_at
            ]
            if inside:
                return rule, max(inside, key=lambda touch: touch[:2])[2]
        return None
