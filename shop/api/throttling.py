from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle


class TokenRateThrottle(SimpleRateThrottle):
    """One budget per API token (not per user: a shop may run several integrations with their own tokens).

    The rate is read from settings on each request, so that operators (and tests) can change it.
    """

    scope = "token"

    def get_rate(self):
        return settings.API_THROTTLE_RATE

    def get_cache_key(self, request, view):
        token = getattr(request, "auth", None)
        ident = getattr(token, "key", None) or self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
