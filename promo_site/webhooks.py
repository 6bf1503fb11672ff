"""The providers' webhooks (anymail's views), closed while no secret is configured.

anymail accepts any post when ANYMAIL_WEBHOOK_SECRET is unset (it only warns), and Postmark signs
nothing: a forged HardBounce would suppress a customer. So without a secret every webhook is refused
with 403 and a log line naming the setting; with one, anymail checks it (a wrong one is its 400).
"""

import functools
import logging

from anymail import urls as anymail_urls
from anymail.utils import get_anymail_setting
from django.http import HttpResponseForbidden
from django.urls import URLPattern

logger = logging.getLogger(__name__)


def webhook_secret_set():
    return bool(get_anymail_setting("webhook_secret", default=None))


def secret_required(view):
    @functools.wraps(view)  # keeps csrf_exempt: providers post without a CSRF token
    def guarded(request, *args, **kwargs):
        if not webhook_secret_set():
            logger.error("Refused a webhook post to %s: ANYMAIL_WEBHOOK_SECRET is not set.", request.path)
            return HttpResponseForbidden("Webhooks are off: ANYMAIL_WEBHOOK_SECRET is not set.")
        return view(request, *args, **kwargs)

    return guarded


def anymail_webhook_urls():
    """anymail.urls with every view behind secret_required, for include()."""
    patterns = [
        URLPattern(p.pattern, secret_required(p.callback), p.default_args, p.name) for p in anymail_urls.urlpatterns
    ]
    return patterns, anymail_urls.app_name
