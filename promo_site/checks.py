"""Deployment checks of the site as a whole (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

DEV_SITE_URL = "http://127.0.0.1:8000"
NON_SENDING_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


@register(Tags.security, deploy=True)
def email_backend_check(app_configs, **kwargs):
    if settings.EMAIL_BACKEND not in NON_SENDING_BACKENDS:
        return []
    return [
        Warning(
            f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: batches would be 'sent' without mailing anyone.",
            hint="Set EMAIL_BACKEND (e.g. anymail.backends.postmark.EmailBackend) and the provider's ANYMAIL_*.",
            id="promo_site.W001",
        )
    ]


@register(Tags.security, deploy=True)
def site_url_check(app_configs, **kwargs):
    """Links in e-mails (unsubscribe, clicks) start with SITE_URL: the development one reaches nobody."""
    if settings.SITE_URL.startswith("https://") and settings.SITE_URL.rstrip("/") != DEV_SITE_URL:
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL!r}: links in e-mails need the site's public https address.",
            hint="Set SITE_URL, e.g. https://promo.example.com.",
            id="promo_site.W002",
        )
    ]
