"""A token-bucket rate limiter shared by every worker process and host, kept in Redis.

The bucket holds up to `burst` tokens and refills at `per_second`. It is stored in the form of the
generic cell rate algorithm: one number per limiter, the time at which the bucket will be full again
("tat"), updated by one Lua script, so concurrent workers on any host take tokens atomically and the
clock is Redis's own (hosts' clocks may differ). A request for n tokens is a reservation: it takes
the tokens at once, possibly running the bucket into debt, and learns when they may be used; waiters
are served in the order they asked, and nobody polls. A request that would have to wait longer than
its caller allows reserves nothing.

Without Redis (REDIS_URL empty: the embedded mode on SQLite), the same arithmetic runs in this process
only: each process then has its own bucket, so N processes together may send N times the rate. That
mode is for trying the product on a laptop, not for sending for real.
"""

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

# KEYS[1]: the limiter's key. ARGV: interval (microseconds per token), burst, n, max_wait (microseconds,
# -1 for no limit). Returns {granted (1/0), now, at}, times in microseconds of the Redis clock.
# Times are formatted with %.0f because Lua's tostring would round them to 14 digits.
RESERVE_SCRIPT = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local max_wait = tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + n * interval
local at = math.max(now, new_tat - burst * interval)
if max_wait >= 0 and at - now > max_wait then
  return {0, now, math.floor(at)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {1, now, math.floor(at)}
"""


@dataclass(frozen=True)
class Grant:
    """n tokens, usable from `at` (seconds, in the limiter's clock), `wait` seconds after they were asked for."""

    n: int
    at: float
    wait: float


class RateLimiter:
    """At most `per_second` tokens a second on average and `burst` at once, across all processes
    that use the same name."""

    def __init__(self, name, per_second, burst=None):
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.name = name
        self.per_second = float(per_second)
        self.burst = int(burst) if burst is not None else max(1, math.ceil(per_second))
        if self.burst < 1:
            raise ValueError("burst must be at least 1")
        # This instance's recent grants: the limiter's own accounting, for monitoring and tests.
        self.grants = deque(maxlen=1000)
        if settings.REDIS_URL:
            self._bucket = _RedisBucket(settings.REDIS_URL, f"promo:ratelimit:{name}")
        else:
            self._bucket = _LocalBucket.named(name)

    def reserve(self, n=1, max_wait=None):
        """Take n tokens and return the Grant saying when they may be used, without waiting for them;
        or None, reserving nothing, when that would be more than max_wait seconds from now."""
        if not 1 <= n <= self.burst:
            raise ValueError(f"cannot take {n} tokens from {self.name!r} at once: its burst is {self.burst}")
        interval = 1.0 / self.per_second
        granted, now, at = self._bucket.reserve(interval, self.burst, n, max_wait)
        if not granted:
            return None
        grant = Grant(n=n, at=at, wait=max(0.0, at - now))
        self.grants.append(grant)
        return grant

    def acquire(self, n=1, timeout=None):
        """Block until n tokens are ours and return the seconds waited. Raises TimeoutError, having
        reserved nothing, when the wait would be longer than timeout seconds."""
        grant = self.reserve(n, max_wait=timeout)
        if grant is None:
            raise TimeoutError(f"{n} token(s) of {self.name!r} are not available within {timeout} s")
        if grant.wait > 0:
            time.sleep(grant.wait)
        return grant.wait

    def try_acquire(self, n=1):
        """Take n tokens if they are available now; False, reserving nothing, otherwise."""
        return self.reserve(n, max_wait=0) is not None


class _RedisBucket:
    def __init__(self, url, key):
        self.key = key
        self.script = _reserve_script(url)

    def reserve(self, interval, burst, n, max_wait):
        max_wait_us = -1 if max_wait is None else round(max_wait * 1e6)
        granted, now, at = self.script(keys=[self.key], args=[interval * 1e6, burst, n, max_wait_us])
        return bool(granted), now / 1e6, at / 1e6


@lru_cache
def _reserve_script(url):
    import redis
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.retry import Retry

    # A sender asks for tokens right after claiming a chunk: rather than fail the task (its claim would then
    # wait for the sweeper), ride out a Redis restart. Up to RETRIES attempts at most 3 s apart (random
    # waits: some 20 to 45 s), then the error goes to the send task, which retries itself.
    retry = Retry(ExponentialWithJitterBackoff(base=0.2, cap=3.0), retries=RETRIES)
    client = redis.Redis.from_url(url, retry=retry, **settings.REDIS_CONNECTION_OPTIONS)
    return client.register_script(RESERVE_SCRIPT)


RETRIES = 15


class _LocalBucket:
    """The same arithmetic for one process; limiters of the same name share one bucket."""

    _buckets = {}
    _registry_lock = threading.Lock()

    def __init__(self):
        self.lock = threading.Lock()
        self.tat = 0.0

    @classmethod
    def named(cls, name):
        with cls._registry_lock:
            return cls._buckets.setdefault(name, cls())

    def reserve(self, interval, burst, n, max_wait):
        with self.lock:
            now = time.monotonic()
            new_tat = max(self.tat, now) + n * interval
            at = max(now, new_tat - burst * interval)
            if max_wait is not None and at - now > max_wait:
                return False, now, at
            self.tat = new_tat
            return True, now, at
