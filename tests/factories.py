import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

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
