import math
from datetime import timedelta

import pytest
from django.utils import timezone

from demo_shop.model import PurchaseModel
from shop.models import Item
from tests.factories import CustomerFactory, EventFactory, ItemFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("years_ago", [0, 2])
def test_chances_follow_each_customers_own_purchase_days_shrunk_to_the_shops_rate(years_ago):
    # given: over 100 days, a buys yogurt on 10 days (twice on one of them), b never, c buys only bread
    end = timezone.now() - timedelta(days=365 * years_ago)
    yogurt, bread = ItemFactory(category_path="Dairy > Yogurt"), ItemFactory(category_path="Bakery > Bread")
    a, b, c = CustomerFactory(), CustomerFactory(), CustomerFactory()
    for day in range(10):
        EventFactory(customer=a, item=yogurt, occurred_at=end - timedelta(days=10 * day + 1))
    # the same day again, earlier that day (not an hour before: a suite run in the first hour of a day put
    # that purchase on the day before, and the customer had 11 purchase days)
    last = end - timedelta(days=1)
    midnight = timezone.localtime(last).replace(hour=0, minute=0, second=0, microsecond=0)
    EventFactory(customer=a, item=yogurt, occurred_at=midnight + (last - midnight) / 2)
    EventFactory(customer=c, item=bread, occurred_at=end - timedelta(days=100))
    # when: the year before now (for a history that ended two years ago: the year before it ended)
    chances = PurchaseModel().base_chances(
        customer_ids=[a.id, b.id, c.id],
        items=Item.objects.filter(category_path__startswith="Dairy"),
        until=timezone.now(),
        window_days=14,
    )
    # then: rate = (purchase days + 30 x mu) / (days of history + 30), mu = 10 / (3 x days); the history
    # runs from the first purchase to now, or, for the old one, to a second after its last purchase
    days = 99 + 1 / 86400 if years_ago else 100
    mu = 10 / (3 * days)
    assert chances[a.id] == pytest.approx(1 - math.exp(-(10 + 30 * mu) / (days + 30) * 14), rel=1e-3)
    assert chances[b.id] == chances[c.id] == pytest.approx(1 - math.exp(-(30 * mu) / (days + 30) * 14), rel=1e-3)
    assert chances[a.id] > chances[b.id] > 0
