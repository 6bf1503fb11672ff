"""Demo mode: the one home of the demo's time scale and of the rule that it runs only on the fake provider.

With DEMO_MODE on, a simulated shop (demo_shop/) answers the product's messages: the loopback fake Postmark
reports deliveries, opens and clicks, and simulated customers buy. So that a marketer sees a batch's
measurement close in minutes, DEMO_TIME_SCALE (default 1440: a day per minute) divides every window the
measurement reads: the measurement window, the attribution windows and the stats horizon. Every use of
MEASUREMENT_DAYS, ATTRIBUTION_CLICK_DAYS and ATTRIBUTION_DELIVERY_DAYS goes through `scaled_days()`, so
outside demo mode nothing changes, and in demo mode nothing is left on the real clock.

Demo mode is refused with anything but the fake Postmark on loopback: a scaled window would make a real
campaign's figures wrong, and the simulator would post purchases no customer made.
"""

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

POSTMARK_BACKEND = "anymail.backends.postmark.EmailBackend"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def demo_provider_problem(email_backend, postmark_api_url):
    """Why demo mode may not run with this e-mail configuration, or "" when it is the loopback fake Postmark."""
    if email_backend != POSTMARK_BACKEND:
        return f"DEMO_MODE=1 needs the fake Postmark (EMAIL_BACKEND={POSTMARK_BACKEND}), not {email_backend}."
    host = urlsplit(postmark_api_url or "").hostname
    if host not in LOOPBACK:
        return (
            f"DEMO_MODE=1 needs the fake Postmark on loopback (ANYMAIL_POSTMARK_API_URL=http://127.0.0.1:PORT/), "
            f"not {postmark_api_url or 'the real Postmark'}: the simulator would post purchases to a real "
            "provider's campaigns, and the demo's time scale would shrink their measurement windows."
        )
    return ""


def demo_mode():
    """True in demo mode; ImproperlyConfigured when it is on with a real provider (never silently scaled)."""
    if not settings.DEMO_MODE:
        return False
    problem = demo_provider_problem(settings.EMAIL_BACKEND, settings.ANYMAIL.get("POSTMARK_API_URL"))
    if problem:
        raise ImproperlyConfigured(problem)
    return True


def time_scale():
    """How many times faster than real time the demo's windows close: DEMO_TIME_SCALE in demo mode, else 1."""
    return settings.DEMO_TIME_SCALE if demo_mode() else 1.0


def scaled_days(days):
    """A window of `days` as a timedelta on the running clock: the one helper every window goes through."""
    return timedelta(days=days / time_scale())


def measurement_window():
    """How long after a send the treated and holdout customers are measured (MEASUREMENT_DAYS)."""
    return scaled_days(settings.MEASUREMENT_DAYS)


def click_window():
    """How long before a purchase a click earns it (ATTRIBUTION_CLICK_DAYS)."""
    return scaled_days(settings.ATTRIBUTION_CLICK_DAYS)


def delivery_window():
    """How long before a purchase a delivery earns it (ATTRIBUTION_DELIVERY_DAYS)."""
    return scaled_days(settings.ATTRIBUTION_DELIVERY_DAYS)


def stats_horizon():
    """How long after its send a batch's aggregates keep being refreshed: its window, a click window and a day."""
    return scaled_days(settings.MEASUREMENT_DAYS + settings.ATTRIBUTION_CLICK_DAYS + 1)
