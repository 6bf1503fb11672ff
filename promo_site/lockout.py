"""The address a login lockout (django-axes, settings "Login lockout") counts failures against."""

from django.conf import settings


def client_ip(request):
    """REMOTE_ADDR, or behind our TLS proxy the address that proxy saw.

    Behind the proxy every request comes from the proxy's address: locking that would lock a username out
    for everyone. The proxy appends the address it saw to X-Forwarded-For; earlier entries are the client's
    own claims and could be forged to dodge the lockout, so only the last one counts.
    """
    remote = request.META.get("REMOTE_ADDR")
    if not settings.BEHIND_TLS_PROXY:
        return remote
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.rsplit(",", 1)[-1].strip() or remote
