import uuid
from datetime import timedelta
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from campaigns.models import Audience, Batch, Campaign, Conversion, MessageEvent, Promotion, Recipient
from shop.models import Customer, Event, EventType, Item


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    external_id = factory.Sequence(lambda n: f"cust-{n}")
    email = factory.LazyAttribute(lambda c: f"{c.external_id}@example.test")
    name = factory.Faker("name")
    marketing_consent = True
    consent_at = factory.LazyFunction(timezone.now)
    consent_source = "signup form"


class ItemFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Item

    external_id = factory.Sequence(lambda n: f"sku-{n}")
    title = factory.Faker("catch_phrase")
    category_path = "Beauty > Skin care > Creams"
    brand = "Acme"
    price = "19.90"
    cost = "8.00"


class EventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Event

    customer = factory.SubFactory(CustomerFactory)
    item = factory.SubFactory(ItemFactory)
    type = EventType.PURCHASE
    quantity = 1
    value = "19.90"
    occurred_at = factory.LazyFunction(timezone.now)
    source = "web"
    client_event_id = factory.Sequence(lambda n: f"ev-{n}")


# --- campaigns: rows written straight to the database, past the services, so they stay valid while those change --


class PromotionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Promotion

    name = "15% off skin care"
    kind = Promotion.Kind.PERCENT_OFF
    value = 15
    categories = factory.LazyFunction(lambda: ["Beauty > Skin care"])
    ends_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=14))
    code_mode = Promotion.CodeMode.SHARED
    shared_code = "SKIN15"


class AudienceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Audience

    name = factory.Sequence(lambda n: f"Audience {n}")
    rules = factory.LazyFunction(lambda: {"match": "all", "rules": []})


class CampaignFactory(factory.django.DjangoModelFactory):
    """A campaign; `promotions=[...]` adds its candidate promotions."""

    class Meta:
        model = Campaign
        # A second save would raise the version and void approvals (campaigns/signals.py).
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Campaign {n}")
    audience = factory.SubFactory(AudienceFactory)
    # any purchase: the factories' recipients have no promotion, hence no eligible items to buy
    measured_response = Campaign.Response.PURCHASE
    created_by = factory.SubFactory(UserFactory)

    @factory.post_generation
    def promotions(self, create, extracted, **kwargs):
        if create and extracted:
            self.promotions.add(*extracted)


def _rows(rows, which):
    """`which` of the rows, in order: the first `which` (an int) or a slice (`slice(None, None, 2)`: every second)."""
    return rows[which] if isinstance(which, slice) else rows[:which]


class BatchFactory(factory.django.DjangoModelFactory):
    """A batch that was sent, with its messages, their events and conversions, as keyword arguments:

        BatchFactory(campaign=campaign, sent_at=sent, recipients=200, holdout=50,
                     events={"delivered": slice(None), "opened": slice(None, None, 2)}, conversions=60)

    recipients and holdout: how many new customers, or the customers themselves (recipients__items=... and
    the like go to RecipientFactory); events: per kind, which recipients have one (an int: the first ones,
    or a slice); conversions: which recipients bought, attributed by click (conversions__margin=... and the
    like go to ConversionFactory). The recipients in order are batch.recipients.filter(outcome="recipient").
    """

    class Meta:
        model = Batch
        skip_postgeneration_save = True

    campaign = factory.SubFactory(CampaignFactory)
    number = factory.Sequence(lambda n: n + 1)
    status = Batch.Status.SENT
    rendering = Batch.Rendering.STORED  # its rows carry their subject (and body, where a test gives one)
    seed = 1
    created_by = factory.SubFactory(UserFactory)
    sent_at = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    generated_at = factory.LazyAttribute(lambda b: b.sent_at - timedelta(hours=1) if b.sent_at else None)

    @factory.post_generation
    def recipients(self, create, extracted, **kwargs):
        _messages(self, extracted, **kwargs)

    @factory.post_generation
    def holdout(self, create, extracted, **kwargs):
        _messages(self, extracted, holdout=True, **kwargs)

    @factory.post_generation
    def events(self, create, extracted, **kwargs):
        rows = list(self.recipients.filter(outcome=Recipient.Outcome.RECIPIENT)) if extracted else []
        events = [
            MessageEventFactory.build(recipient=row, kind=kind, **kwargs)
            for kind, which in (extracted or {}).items()
            for row in _rows(rows, which)
        ]
        MessageEvent.objects.bulk_create(events)  # hundreds in the dashboard's tests

    @factory.post_generation
    def conversions(self, create, extracted, **kwargs):
        rows = list(self.recipients.filter(outcome=Recipient.Outcome.RECIPIENT)) if extracted else []
        for row in _rows(rows, extracted or 0):
            ConversionFactory(recipient=row, **kwargs)


def _messages(batch, customers, **fields):
    if isinstance(customers, int):
        customers = CustomerFactory.create_batch(customers)
    for customer in customers or ():
        RecipientFactory(batch=batch, customer=customer, **fields)


class RecipientFactory(factory.django.DjangoModelFactory):
    """A message that went out with its batch; RecipientFactory(holdout=True): a customer held out instead."""

    class Meta:
        model = Recipient

    class Params:
        holdout = factory.Trait(
            outcome=Recipient.Outcome.EXCLUDED,
            reason=Recipient.Reason.HOLDOUT,
            send_status="",
            sent_at=None,
            provider_message_id="",
            subject="",
        )

    batch = factory.SubFactory(BatchFactory)
    customer = factory.SubFactory(CustomerFactory)
    outcome = Recipient.Outcome.RECIPIENT
    subject = "15% off, picked for you"
    send_status = Recipient.SendStatus.SENT
    sent_at = factory.LazyAttribute(lambda r: r.batch.sent_at)
    provider_message_id = factory.LazyFunction(lambda: str(uuid.uuid4()))


class MessageEventFactory(factory.django.DjangoModelFactory):
    """An event of a sent message, an hour after the send unless occurred_at says otherwise."""

    class Meta:
        model = MessageEvent

    recipient = factory.SubFactory(RecipientFactory)
    kind = MessageEvent.Kind.DELIVERED
    source = MessageEvent.Source.PROVIDER
    event_id = factory.Sequence(lambda n: f"message-event-{n}")
    occurred_at = factory.LazyAttribute(lambda e: e.recipient.sent_at + timedelta(hours=1))


class ConversionFactory(factory.django.DjangoModelFactory):
    """A purchase a day after the send, credited by a click; revenue and discount are the purchase's."""

    class Meta:
        model = Conversion

    recipient = factory.SubFactory(RecipientFactory)
    batch = factory.SelfAttribute("recipient.batch")
    customer = factory.SelfAttribute("recipient.customer")
    occurred_at = factory.LazyAttribute(lambda c: c.recipient.sent_at + timedelta(days=1))
    event = factory.SubFactory(
        EventFactory, customer=factory.SelfAttribute("..customer"), occurred_at=factory.SelfAttribute("..occurred_at")
    )
    rule = Conversion.Rule.CLICK
    revenue = factory.LazyAttribute(lambda c: Decimal(str(c.event.value)))
    discount = factory.LazyAttribute(lambda c: Decimal(str(c.event.discount)))
    margin = Decimal("0")
