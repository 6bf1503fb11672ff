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


def permission_denied(request, exception=None):
    """The 403 page inside the admin's frame (header, links, styles), saying why and what the roles may do."""
    from django.contrib import admin
    from django.shortcuts import render

    context = {**admin.site.each_context(request), "exception": str(exception or ""), "title": "Not allowed"}
    return render(request, "403.html", context, status=403)
