"""The per-token rate limit holds under concurrency: the check and the count are one atomic step."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache.backends.redis import RedisCache
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

EVENTS = "/api/v1/events/"
LIMIT = 20
CLIENTS = 4
EACH = 15  # 60 requests in all, three times the limit


def _hammer(key):
    """CLIENTS threads send EACH requests each with one token, all released at once; the status codes."""
    start = threading.Barrier(CLIENTS)

    def client_run(_):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
        try:
            start.wait()
            return [client.get(EVENTS).status_code for _ in range(EACH)]
        finally:
            connection.close()  # each thread's own database connection

    with ThreadPoolExecutor(CLIENTS) as pool:
        return [code for codes in pool.map(client_run, range(CLIENTS)) for code in codes]


@pytest.mark.django_db(transaction=True)
@override_settings(API_THROTTLE_RATE=f"{LIMIT}/min")
def test_concurrent_clients_get_exactly_the_limit(api_token):
    if not _redis():
        pytest.skip("the atomic throttle needs the Redis cache (services mode)")
    codes = _hammer(api_token.key)
    assert sorted(set(codes)) == [200, 429]
    assert codes.count(200) == LIMIT


@pytest.mark.django_db(transaction=True)
@override_settings(
    API_THROTTLE_RATE=f"{LIMIT}/min",
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle-test"}},
)
def test_without_redis_the_threads_of_one_process_still_share_the_limit(api_token):
    codes = _hammer(api_token.key)
    assert codes.count(200) == LIMIT


@override_settings(API_THROTTLE_RATE="2/min")
def test_a_throttled_answer_says_when_to_retry(api):
    if not _redis():
        pytest.skip("the Redis path")
    assert [api.get(EVENTS).status_code for _ in range(3)] == [200, 200, 429]
    response = api.get(EVENTS)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60


def test_the_window_slides(api, monkeypatch):
    from shop.api.throttling import TokenRateThrottle

    clock = [1_000_000.0]
    monkeypatch.setattr(TokenRateThrottle, "timer", lambda self: clock[0])
    with override_settings(API_THROTTLE_RATE="2/min"):
        assert [api.get(EVENTS).status_code for _ in range(3)] == [200, 200, 429]
        clock[0] += 30
        assert api.get(EVENTS).status_code == 429  # both still inside the last minute
        clock[0] += 31
        assert [api.get(EVENTS).status_code for _ in range(3)] == [200, 200, 429]


def _redis():
    from django.core.cache import caches

    return isinstance(caches["default"], RedisCache)
