"""The answer while the database or Redis is away for a moment: 503 with Retry-After, never a 500.

A PostgreSQL restart, a failover or a Redis restart makes the next query raise. The API answers with JSON
(shop/api/exceptions.py); the pages (the admin, the dashboard, the review pages) answer with a page that says
what happened and that nothing was lost, through `UnavailableMiddleware`. The next request reconnects by
itself (CONN_HEALTH_CHECKS, redis-py's reconnect): nothing to restart.
"""

import logging

import redis.exceptions
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

log = logging.getLogger(__name__)

# What a lost connection raises. OperationalError also covers a statement cancelled by a timeout, for which
# "try again later" is the right answer too.
UNAVAILABLE = (
    OperationalError,
    InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)


class UnavailableMiddleware:
    """A page whose view found the database or Redis away answers 503 with Retry-After, not Django's 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, UNAVAILABLE):
            return None
        log.warning("%s %s: answered 503, a backing service is unavailable: %s", request.method, request.path,
                    str(exception).strip()[:300])  # fmt: skip
        # Rendered without the request: its context (the user, the session) would ask the database again.
        from django.contrib import admin

        context = {
            "site_header": admin.site.site_header,
            "site_title": admin.site.site_title,
            "path": request.get_full_path(),
        }
        page = render_to_string("503.html", context)
        response = HttpResponse(page, status=503)
        response["Retry-After"] = str(settings.API_RETRY_AFTER_SECONDS)
        return response
