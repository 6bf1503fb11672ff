"""Liveness of the background parts, as the web process can see it."""

from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_KEY = "promo_site:heartbeat"


def record_heartbeat():
    cache.set(HEARTBEAT_KEY, timezone.now().isoformat(), timeout=None)


def last_heartbeat():
    value = cache.get(HEARTBEAT_KEY)
    return datetime.fromisoformat(value) if value else None
