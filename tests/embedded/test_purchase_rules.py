"""Embedded mode (SQLite): the purchase rules read the events, with no summary and no refresh to run."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.audiences import audience_count, audience_query
from campaigns.purchase_summary import summary_refresh
from tests.factories import CustomerFactory, EventFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sqlite_only(settings):
    if connection.vendor != "sqlite" or not settings.EMBEDDED_MODE:
        pytest.skip("runs on SQLite: tests/promo_site/test_embedded_mode.py starts it")


def test_it_counts_purchase_rules_from_the_events():
    # given: a customer with 3 recent purchases, one with 1 long ago, one with none
    now = timezone.now()
    frequent, lapsed, _ = CustomerFactory(), CustomerFactory(), CustomerFactory()
    for days in (1, 2, 3):
        EventFactory(customer=frequent, value="40.00", occurred_at=now - timedelta(days=days))
    EventFactory(customer=lapsed, value="150.00", occurred_at=now - timedelta(days=200))

    # when: the refresh runs (nothing to do here)
    assert summary_refresh().watermark == 0

    # then: the rules select from the events
    rules = {"match": "all", "rules": [{"field": "frequency", "op": "gte", "value": 3, "days": 90}]}
    assert set(audience_query(rules)) == {frequent}
    lapsed_rules = {
        "match": "all",
        "rules": [
            {"field": "monetary", "op": "gte", "value": 100, "days": 365},
            {"field": "recency_days", "op": "gte", "value": 60},
        ],
    }
    assert set(audience_query(lapsed_rules)) == {lapsed}
    assert audience_count(rules)["total"] == 1
