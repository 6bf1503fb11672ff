import threading
import uuid

from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from rest_framework.throttling import SimpleRateThrottle

# A sliding window in one Redis sorted set per token, checked and counted in one atomic step: the set holds a
# member per accepted request scored by its time in ms. Requests older than the window are dropped, and the
# request is added only while fewer than the limit remain. Returns {accepted 0/1, requests in the window,
# time of the oldest one (ms)}. Times are integers: Redis truncates Lua's floats.
_SLIDING_WINDOW = """
local key, now, window, limit, member = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local accepted = 0
if count < limit then
  redis.call('ZADD', key, now, member)
  count = count + 1
  accepted = 1
end
redis.call('PEXPIRE', key, window)
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
return {accepted, count, tonumber(oldest[2] or now)}
"""

# Without Redis (development on SQLite, the file cache) the read-then-write of DRF's history is kept, under a
# lock: atomic between the threads of one process, not between processes. Production runs Redis.
_fallback_lock = threading.Lock()


class TokenRateThrottle(SimpleRateThrottle):
    """One budget per API token (not per user: a shop may run several integrations with their own tokens).

    The rate is read from settings on each request, so that operators (and tests) can change it. On Redis the
    check and the count are one Lua script (a sliding window), so concurrent requests cannot both take the
    last slot; DRF's own get-then-set let 4 clients through 1,430 times a minute on a 1,200/min limit.
    """

    scope = "token"

    def get_rate(self):
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        ident = getattr(token, "key", None) or self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        if isinstance(self.cache, RedisCache):
            return self._allow_redis()
        with _fallback_lock:
            return super().allow_request(request, view)

    def _allow_redis(self):
        self.now = self.timer()
        now_ms, window_ms = int(self.now * 1000), self.duration * 1000
        client = self.cache._cache.get_client(write=True)
        script = client.register_script(_SLIDING_WINDOW)
        accepted, count, oldest_ms = script(
            keys=[self.cache.make_and_validate_key(self.key)],
            args=[now_ms, window_ms, self.num_requests, f"{now_ms}-{uuid.uuid4().hex}"],
        )
        # wait() reads the history: its length and its oldest time are all it needs.
        self.history = [oldest_ms / 1000] * int(count)
        return bool(accepted)
