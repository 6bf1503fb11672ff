"""campaigns.ratelimit on the tests' Redis, and in-process without it.

Assertions read the limiter's own accounting (when each grant may be used, in its clock), never
wall-clock durations.
"""

import multiprocessing
import threading
import uuid

import pytest
from django.test import override_settings

from campaigns.ratelimit import Grant, RateLimiter

SLACK = 1e-3  # tokens: microsecond rounding of the stored times


def a_name():
    return f"test-{uuid.uuid4().hex}"


def assert_within_rate(grants, per_second, burst):
    """In every window [a, b] between two grants, no more than per_second * (b - a) + burst tokens."""
    grants = sorted(grants, key=lambda grant: grant.at)
    for first in range(len(grants)):
        taken = 0
        for last in range(first, len(grants)):
            taken += grants[last].n
            window = grants[last].at - grants[first].at
            assert taken <= per_second * window + burst + SLACK, (first, last, taken, window)


def assert_no_needless_wait(grants, per_second):
    """One caller asking in turn for one token at a time with a burst of 1: each grant is usable as
    soon as the rate allows after the previous one, or at once, never later."""
    for previous, grant in zip(grants, grants[1:]):
        asked_at = grant.at - grant.wait
        assert grant.at <= max(asked_at, previous.at + 1 / per_second) + 1e-5


@pytest.fixture(params=["redis", "local"])
def backend(request):
    """Every test runs on Redis and on the process-local fallback of the embedded mode."""
    if request.param == "redis":
        yield
    else:
        with override_settings(REDIS_URL=""):
            yield


def test_it_spaces_grants_at_the_rate(backend):
    # given 20 tokens a second, one at a time
    limiter = RateLimiter(a_name(), per_second=20, burst=1)
    # when 40 tokens are reserved at once
    grants = [limiter.reserve() for _ in range(40)]
    # then the first is free, the last usable 39/20 s later, and none earlier than the rate allows
    assert grants[0].wait == 0
    assert grants[-1].at - grants[0].at >= 39 / 20 - 1e-5
    assert_within_rate(grants, 20, 1)
    assert_no_needless_wait(grants, 20)


def test_two_threads_share_the_rate(backend):
    # given two workers, each with its own limiter of the same name
    name = a_name()
    limiters = [RateLimiter(name, per_second=20, burst=2) for _ in range(2)]
    waited = {0: [], 1: []}

    def work(index):
        for _ in range(20):
            waited[index].append(limiters[index].acquire())

    # when each acquires 20 tokens, sleeping for them
    threads = [threading.Thread(target=work, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then together they took 40 tokens over at least (40 - burst) / 20 s of the limiter's clock
    grants = list(limiters[0].grants) + list(limiters[1].grants)
    assert len(grants) == 40 and sum(grant.n for grant in grants) == 40
    span = max(g.at for g in grants) - min(g.at - g.wait for g in grants)
    assert span >= (40 - 2) / 20 - 1e-5
    # each worker's computed waits add up to about the whole span, because they waited side by side
    for index in (0, 1):
        assert 0 < sum(waited[index]) <= span + 1e-5
    assert_within_rate(grants, 20, 2)


def _reserve_in_child(name, count, results):
    limiter = RateLimiter(name, per_second=20, burst=1)
    results.put([(grant.n, grant.at, grant.wait) for grant in (limiter.reserve() for _ in range(count))])


def test_two_processes_share_the_rate_through_redis():
    # given a second process reserving from the same limiter
    name = a_name()
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(target=_reserve_in_child, args=(name, 20, results))
    child.start()
    # when both reserve 20 tokens
    limiter = RateLimiter(name, per_second=20, burst=1)
    mine = [limiter.reserve() for _ in range(20)]
    theirs = results.get(timeout=60)
    child.join(timeout=60)
    # then no window holds more tokens than the rate allows across both
    grants = mine + [Grant(n=n, at=at, wait=wait) for n, at, wait in theirs]
    assert len(grants) == 40
    assert_within_rate(grants, 20, 1)


def test_try_acquire_takes_the_burst_then_refuses_without_reserving(backend):
    limiter = RateLimiter(a_name(), per_second=1, burst=3)
    assert [limiter.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert len(limiter.grants) == 3
    assert limiter.try_acquire(2) is False
    assert len(limiter.grants) == 3


def test_acquire_gives_up_at_once_when_the_wait_would_exceed_the_timeout(backend):
    limiter = RateLimiter(a_name(), per_second=1, burst=1)
    assert limiter.acquire() == 0
    with pytest.raises(TimeoutError):
        limiter.acquire(timeout=0.1)
    # nothing was reserved by the refusal: the next token is still about a second away, not two
    assert limiter.reserve().wait <= 1 + 1e-5


def test_limiters_of_different_names_do_not_share(backend):
    first, second = RateLimiter(a_name(), per_second=1), RateLimiter(a_name(), per_second=1)
    assert first.try_acquire() and second.try_acquire()


def test_it_refuses_more_tokens_at_once_than_its_burst(backend):
    limiter = RateLimiter(a_name(), per_second=100, burst=50)
    with pytest.raises(ValueError):
        limiter.reserve(51)
