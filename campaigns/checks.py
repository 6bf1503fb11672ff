"""Deployment checks (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def webhook_secret_check(app_configs, **kwargs):
    """Postmark signs nothing: the basic-auth secret is the tracking webhooks' only protection."""
    if (getattr(settings, "ANYMAIL", None) or {}).get("WEBHOOK_SECRET"):
        return []
    return [
        Warning(
            "ANYMAIL_WEBHOOK_SECRET is not set: the tracking webhooks refuse every post (403).",
            hint="Set it to a random 'user:password' and give the provider "
            "https://user:password@<host>/anymail/postmark/tracking/ (README, 'Tracking').",
            id="campaigns.W001",
        )
    ]
