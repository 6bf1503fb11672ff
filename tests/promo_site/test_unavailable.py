"""A page whose database or Redis is away answers 503 with Retry-After, not Django's 500 (promo_site/unavailable.py).

The real outage (PostgreSQL stopped under a running server) is in tests/promo_site/test_outages.py.
"""

import pytest
import redis.exceptions
from django.db import OperationalError


@pytest.mark.django_db
@pytest.mark.parametrize(
    "error",
    [OperationalError("server closed the connection unexpectedly"), redis.exceptions.ConnectionError("refused")],
)
def test_a_page_whose_database_is_away_answers_503_saying_so(admin_client, monkeypatch, settings, error):
    # given: the dashboard's read fails as it does while PostgreSQL (or Redis) restarts
    def away(**kwargs):
        raise error

    monkeypatch.setattr("campaigns.dashboard.views.dashboard_data", away)
    # when
    response = admin_client.get("/?campaign=3")
    # then: 503, come back in a few seconds, and a page that says what happened and that nothing is lost
    assert response.status_code == 503
    assert response["Retry-After"] == str(settings.API_RETRY_AFTER_SECONDS)
    page = response.content.decode()
    assert "not answering at the moment" in page and "Nothing you saved before is lost" in page
    assert 'href="/?campaign=3"' in page and "promo_site" in page  # Reload: the same page, its filters kept


@pytest.mark.django_db
def test_other_errors_are_still_errors(admin_client, monkeypatch):
    def broken(**kwargs):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr("campaigns.dashboard.views.dashboard_data", broken)
    with pytest.raises(ValueError):
        admin_client.get("/")
