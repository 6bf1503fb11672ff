"""Who may read and who may write the shop's data through the API: every endpoint, every role."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from shop.models import Customer, Event, Item
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

WRITES = {
    "/api/v1/customers/": [{"external_id": "c1", "email": "c1@example.test", "suppressed": True}],
    "/api/v1/items/": [{"external_id": "i1", "title": "Night cream", "price": "9.99"}],
    "/api/v1/events/": {
        "source": "web",
        "events": [
            {"event_id": "e1", "customer": "c1", "item": "i1", "type": "view", "occurred_at": "2026-01-02T10:00Z"}
        ],
    },
}
STAFF = ["analyst", "approver", "marketer", "admin"]


@pytest.fixture
def client_as(request, roles):
    def make(who):
        client = APIClient()
        if who == "anonymous":
            return client
        if who == "admin":
            user = UserFactory(username="admin", is_superuser=True)
        else:
            user = request.getfixturevalue(who)
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return make


@pytest.mark.parametrize("url", WRITES)
@pytest.mark.parametrize("who, status", [("anonymous", 401)] + [(role, 200) for role in STAFF] + [("integration", 200)])
def test_it_lets_staff_and_integrations_read(client_as, url, who, status):
    assert client_as(who).get(url).status_code == status


@pytest.mark.parametrize("url", WRITES)
@pytest.mark.parametrize(
    "who, status",
    [("anonymous", 401), ("analyst", 403), ("approver", 403), ("marketer", 403), ("admin", 200), ("integration", 200)],
)
def test_it_lets_only_integrations_and_admins_write(client_as, url, who, status):
    response = client_as(who).post(url, WRITES[url], format="json")

    assert response.status_code == status
    written = Customer.objects.exists() or Item.objects.exists() or Event.objects.exists()
    assert written == (status == 200)
