from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from campaigns.models import Audience, Campaign
from recommender.models import ModelVersion
from recommender.services import modelversion_activate, modelversion_train
from shop.models import Event
from tests.factories import CustomerFactory, ItemFactory, PromotionFactory

CATEGORIES = ["Beauty > Skin care", "Beauty > Hair", "Home > Kitchen"]


@pytest.fixture
def shop(db):
    return build_shop(60)


def build_shop(n_customers):
    """Customers (c00..c03 not contactable) who buy 24 items in cycles, across 3 categories and 2 brands."""
    rng = np.random.default_rng(0)
    items = [
        ItemFactory(
            external_id=f"sku-{i}",
            category_path=CATEGORIES[i % 3],
            brand="Acme" if i % 2 else "Zenith",
            in_stock=i != 5,
        )
        for i in range(24)
    ]
    customers = [CustomerFactory(external_id=f"c{c:02d}", name=f"Customer {c}") for c in range(n_customers)]
    Customer = type(customers[0])
    Customer.objects.filter(external_id__in=["c00", "c01"]).update(marketing_consent=False)
    Customer.objects.filter(external_id="c02").update(unsubscribed_at=timezone.now())
    Customer.objects.filter(external_id="c03").update(suppressed=True, suppressed_reason="hard bounce")
    start = timezone.now() - timedelta(days=40)
    events = []
    for c, customer in enumerate(customers):
        first = int(rng.integers(len(items)))
        for step in range(6):
            item = items[(first + step) % len(items)]
            events.append(
                Event(
                    customer=customer,
                    item=item,
                    type="purchase",
                    value=item.price,
                    occurred_at=start + timedelta(days=step * 5, minutes=c),
                    source="test",
                    client_event_id=f"{c}-{step}",
                )
            )
    Event.objects.bulk_create(events)
    return {"items": items, "customers": customers}


@pytest.fixture
def active_model(shop, settings, tmp_path, admin_user):
    settings.MEDIA_ROOT = tmp_path
    version = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    return modelversion_activate(version=version, by=admin_user)


# The name the campaign tests import: a running 15%-off skin-care promotion, its fields as keywords.
promotion = PromotionFactory


@pytest.fixture
def campaign(shop, marketer):
    audience = Audience.objects.create(name="Everyone", rules={"match": "all", "rules": []}, created_by=marketer)
    campaign = Campaign.objects.create(name="Spring", audience=audience, created_by=marketer, holdout_percent=20)
    campaign.promotions.add(promotion())
    return campaign
