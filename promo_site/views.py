from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone

from promo_site import health


def status(request):
    """Which mode we run in and whether the background parts are alive; for operators and `make run`."""
    beat = health.last_heartbeat()
    return JsonResponse(
        {
            "mode": "embedded" if settings.EMBEDDED_MODE else "services",
            "database": connection.vendor,
            "broker": settings.CELERY_BROKER_URL.split("://")[0],
            "last_heartbeat": beat.isoformat() if beat else None,
            "background_alive": bool(beat and (timezone.now() - beat).total_seconds() < 180),
        }
    )
