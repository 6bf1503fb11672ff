"""Signed links in messages: tracked item links, "not interested" links and unsubscribe links.

A token is the signed (recipient id, item id) or recipient id, salted per purpose: it cannot be
forged, and counting through ids gets nowhere without the secret key.
"""

import functools
import hashlib
import hmac
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.http import url_has_allowed_host_and_scheme

CLICK_SALT = "promo_site.click"
UNSUBSCRIBE_SALT = "promo_site.unsubscribe"
NOT_INTERESTED_SALT = "promo_site.not_interested"


class _Signer(signing.Signer):
    """Django's Signer with its HMAC key derived once, not at every signature: the same tokens, byte for byte
    (Signer.signature is base64_hmac(salt + "signer", value, key), whose salted_hmac hashes salt and key
    into the HMAC key first). A message has a dozen links; deriving the key each time was most of their cost."""

    def __init__(self, salt):
        super().__init__(salt=salt)
        hasher = getattr(hashlib, self.algorithm)
        derived = hasher((self.salt + "signer").encode() + signing.force_bytes(self.key)).digest()
        self._mac = hmac.new(derived, digestmod=hasher)

    def signature(self, value, key=None):
        if key is not None:
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(signing.force_bytes(value))
        return signing.b64_encode(mac.digest()).decode()


@functools.lru_cache(maxsize=16)
def _signer(salt, secret_key):
    return _Signer(salt)  # keyed by the secret too: a new SECRET_KEY (a test's override) gets a new key


def _sign(value, salt):
    # No timestamp: a message's links are the same however often they are rendered, and never expire.
    return _signer(salt, settings.SECRET_KEY).sign_object(value, compress=True)


@functools.lru_cache(maxsize=64)
def _route(name, script_prefix, urlconf):
    """The path of `name` around its one token argument, as (before, after): reverse() once per route."""
    marker = "TOKENMARKER"
    path = reverse(name, args=[marker], urlconf=urlconf)
    before, after = path.split(marker)
    return before, after


def _url(name, token):
    # Tokens are URL-safe base64 with ":" and ".", which reverse() leaves as they are: the same URL it gives.
    before, after = _route(name, get_script_prefix(), get_urlconf())
    return settings.SITE_URL.rstrip("/") + before + token + after


def _unsign(token, salt):
    return signing.Signer(salt=salt).unsign_object(token)


def click_token(recipient_id, item_id):
    return _sign([recipient_id, item_id], CLICK_SALT)


def click_url(recipient_id, item_id):
    return _url("campaigns:click", click_token(recipient_id, item_id))


def click_read(token):
    """(recipient id, item id), or raise signing.BadSignature."""
    recipient_id, item_id = _unsign(token, CLICK_SALT)
    return int(recipient_id), int(item_id)


def not_interested_token(recipient_id, item_id):
    return _sign([recipient_id, item_id], NOT_INTERESTED_SALT)


def not_interested_url(recipient_id, item_id):
    return _url("campaigns:not_interested", not_interested_token(recipient_id, item_id))


def not_interested_read(token):
    """(recipient id, item id), or raise signing.BadSignature."""
    recipient_id, item_id = _unsign(token, NOT_INTERESTED_SALT)
    return int(recipient_id), int(item_id)


def unsubscribe_token(recipient_id):
    return _sign(recipient_id, UNSUBSCRIBE_SALT)


def unsubscribe_url(recipient_id):
    return _url("campaigns:unsubscribe", unsubscribe_token(recipient_id))


def unsubscribe_read(token):
    return int(_unsign(token, UNSUBSCRIBE_SALT))


def message_links(recipient_id, item_ids):
    """The links of one message, as click_url, not_interested_url and unsubscribe_url give them, with the site,
    routes and signers looked up once for the message rather than once a link (a render check makes a dozen
    links a message): ([(click url, not interested url) per item], unsubscribe url)."""
    signers = {salt: _signer(salt, settings.SECRET_KEY) for salt in (CLICK_SALT, NOT_INTERESTED_SALT, UNSUBSCRIBE_SALT)}
    return _message_links(recipient_id, item_ids, lambda value, salt: signers[salt].sign_object(value, compress=True))


def message_links_padded(recipient_id, item_ids):
    """message_links with each token replaced by as many "x" as its longest possible length, never fewer
    characters than the real token has: what a render check needs where the links are only written out
    (their size counts, not their text), without an HMAC, a JSON dump and a zlib run per link.

    A token is Django's sign_object(value, compress=True): the URL-safe base64 of the compact JSON (or, when
    zlib makes it at least 2 bytes shorter, "." and the base64 of that, which is shorter still), the
    separator, and the base64 of the HMAC. The uncompressed form's length bounds it; a message that passes
    with these links passes with the real ones, and one that fails is checked again on the real ones."""
    signer = _signer(CLICK_SALT, settings.SECRET_KEY)
    fixed = len(signer.sep) + _b64_length(getattr(hashlib, signer.algorithm)().digest_size)
    return _message_links(recipient_id, item_ids, lambda value, _salt: "x" * (_b64_length(_json_length(value)) + fixed))


def _b64_length(n):
    return -(-4 * n // 3)  # base64 of n bytes without its padding (signing.b64_encode)


def _json_length(value):
    """len(signing.JSONSerializer().dumps(value)) for an int or a list of ints, without writing it."""
    if type(value) is int:
        return len(str(value))
    if type(value) is list and all(type(v) is int for v in value):
        return 1 + sum(len(str(v)) for v in value) + max(len(value) - 1, 0) + 1
    return len(signing.JSONSerializer().dumps(value))


def _message_links(recipient_id, item_ids, token):
    site = settings.SITE_URL.rstrip("/")
    prefix, urlconf = get_script_prefix(), get_urlconf()
    click, not_interested, unsubscribe = (
        _route(name, prefix, urlconf)
        for name in ("campaigns:click", "campaigns:not_interested", "campaigns:unsubscribe")
    )
    items = [
        (
            site + click[0] + token([recipient_id, item_id], CLICK_SALT) + click[1],
            site + not_interested[0] + token([recipient_id, item_id], NOT_INTERESTED_SALT) + not_interested[1],
        )
        for item_id in item_ids
    ]
    return items, site + unsubscribe[0] + token(recipient_id, UNSUBSCRIBE_SALT) + unsubscribe[1]


def item_shop_url(item):
    """Where an item link lands: the item's own URL attribute when it is on one of the shop's hosts, else
    SHOP_ITEM_URL with its id; in the demo (the shop on DEMO_SHOP_HOST), our own demo product page.

    The attribute comes in through the shop's API and imports; followed blindly, our signed links would be
    an open redirect that sends customers from a trusted mail to anywhere.
    """
    if demo_shop():
        return reverse("campaigns:demo_item", args=[item.external_id])
    own = (item.attributes or {}).get("url")
    if isinstance(own, str) and shop_url_allowed(own):
        return own
    return settings.SHOP_ITEM_URL.format(external_id=item.external_id)


# The demo's shop lives on a reserved name that answers nowhere: while SHOP_ITEM_URL points there, item
# links land on a small product page of our own (campaigns.views.demo_item) rather than on an error.
DEMO_SHOP_HOST = "shop.example.test"


def demo_shop():
    """True when the configured shop is the demo's (SHOP_ITEM_URL on DEMO_SHOP_HOST)."""
    return urlsplit(settings.SHOP_ITEM_URL).hostname == DEMO_SHOP_HOST


def shop_hosts():
    """The hosts (with their port, if any) item links may land on: SHOP_ITEM_URL's and SHOP_LINK_HOSTS."""
    return {urlsplit(settings.SHOP_ITEM_URL).netloc.lower(), *(host.lower() for host in settings.SHOP_LINK_HOSTS)}


def shop_url_allowed(url):
    """An absolute http(s) URL on one of the shop's hosts; Django's check also refuses the tricks browsers
    read differently from urlsplit (backslashes, control characters, user info, three slashes)."""
    url = url.strip()
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.netloc)
        and url_has_allowed_host_and_scheme(url, allowed_hosts=shop_hosts(), require_https=False)
    )
