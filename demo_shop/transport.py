"""How the simulated shop talks to the product: the events API, as the shop's own systems do.

Its token is the demo shop's integration user's (promo_site/roles.py, role "integration"): the only role
that writes events through the API. Over HTTP to a running site (`simulate_shop`), or in-process through
DRF's test client (the bench and the tests, which need no web server): the same view either way.
"""

import json
import urllib.request

from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from promo_site.roles import roles_sync

SOURCE = "demo-shop"
USERNAME = "demo-shop"
EVENTS_PATH = "/api/v1/events/"


class PostError(RuntimeError):
    pass


def demo_shop_token():
    """The demo shop's API token: an integration user without a password or admin pages, made once."""
    user, created = get_user_model().objects.get_or_create(username=USERNAME, defaults={"is_staff": False})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(roles_sync()["integration"])
    return Token.objects.get_or_create(user=user)[0].key


def _body(events):
    return {"source": SOURCE, "on_unknown": "reject", "events": events}


def _checked(status, answer, events):
    if status != 200:
        raise PostError(f"the events API answered {status}: {answer}")
    if answer.get("rejected"):
        raise PostError(f"the events API rejected {len(answer['rejected'])} of {len(events)}: {answer['rejected'][:3]}")
    return answer


class HttpTransport:
    """POSTs to a running site's events API."""

    def __init__(self, site_url, token, timeout=30):
        self.url = site_url.rstrip("/") + EVENTS_PATH
        self.token = token
        self.timeout = timeout

    def post_events(self, events):
        request = urllib.request.Request(
            self.url,
            data=json.dumps(_body(events)).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Token {self.token}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return _checked(response.status, json.loads(response.read()), events)
        except urllib.error.HTTPError as error:
            raise PostError(f"the events API answered {error.code}: {error.read()[:500]!r}") from error


class InProcessTransport:
    """The same API view through DRF's test client, in this process (no web server needed)."""

    def __init__(self, token):
        from rest_framework.test import APIClient

        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    def post_events(self, events):
        response = self.client.post(EVENTS_PATH, _body(events), format="json")
        return _checked(response.status_code, response.json(), events)
