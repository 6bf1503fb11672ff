"""The API's answer when the database or Redis is away for a moment: 503 with Retry-After, never a 500.

A PostgreSQL restart, a failover or a Redis restart (the throttle's counters live there) makes the next
query raise. The client is told to come back: the request changed nothing it cannot repeat. A retried
event batch stores nothing twice (events are unique on source and event_id), and even a batch whose commit
went through just before the connection broke is then answered with its events counted as duplicates.
The next request reconnects by itself (CONN_HEALTH_CHECKS, redis-py's reconnect): nothing to restart.
"""

import logging

from django.conf import settings
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler, set_rollback

from promo_site.unavailable import UNAVAILABLE

log = logging.getLogger(__name__)
UNAVAILABLE_DETAIL = (
    "The service's database or cache is unavailable for a moment. Retry the same request after Retry-After "
    "seconds: a retried event batch stores nothing twice."
)


def api_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None and isinstance(exc, UNAVAILABLE):
        set_rollback()
        view = type(context.get("view")).__name__
        log.warning("API %s: answered 503, a backing service is unavailable: %s", view, str(exc).strip()[:300])
        response = Response(
            {"detail": UNAVAILABLE_DETAIL},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(settings.API_RETRY_AFTER_SECONDS)},
        )
    return response
