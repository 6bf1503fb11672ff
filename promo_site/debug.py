"""What Django's debug pages and error reports may show."""

import re

from django.views.debug import SafeExceptionReporterFilter

# scheme://user:password@host: the password of a DATABASE_URL, REDIS_URL or broker URL
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]+(?=@)", re.IGNORECASE)


class CredentialsHidingFilter(SafeExceptionReporterFilter):
    """Django's filter hides settings named like KEY, SECRET or PASS; names with URL show in full.

    So every string a debug page shows (settings, nested ones such as CACHES, and request.META, which
    under runserver holds the environment) also loses the password part of any URL in it.
    """

    def cleanse_setting(self, key, value):
        cleansed = super().cleanse_setting(key, value)
        if type(cleansed) is str:  # not lazy objects that pass for strings (django-axes has some)
            return _URL_PASSWORD.sub(rf"\g<head>{self.cleansed_substitute}", cleansed)
        return cleansed
