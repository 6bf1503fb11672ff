"""Signed links in messages: tracked item links, "not interested" links and unsubscribe links.

A token is the signed (recipient id, item id) or recipient id, salted per purpose: it cannot be
forged, and counting through ids gets nowhere without the secret key.
"""

from django.conf import settings
from django.core import signing
from django.urls import reverse

CLICK_SALT = "promo_site.click"
UNSUBSCRIBE_SALT = "promo_site.unsubscribe"
NOT_INTERESTED_SALT = "promo_site.not_interested"


def click_token(recipient_id, item_id):
    return signing.dumps([recipient_id, item_id], salt=CLICK_SALT, compress=True)


def click_url(recipient_id, item_id):
    return settings.SITE_URL.rstrip("/") + reverse("campaigns:click", args=[click_token(recipient_id, item_id)])


def click_read(token):
    """(recipient id, item id), or raise signing.BadSignature."""
    recipient_id, item_id = signing.loads(token, salt=CLICK_SALT)
    return int(recipient_id), int(item_id)


def not_interested_token(recipient_id, item_id):
    return signing.dumps([recipient_id, item_id], salt=NOT_INTERESTED_SALT, compress=True)


def not_interested_url(recipient_id, item_id):
    token = not_interested_token(recipient_id, item_id)
    return settings.SITE_URL.rstrip("/") + reverse("campaigns:not_interested", args=[token])


def not_interested_read(token):
    """(recipient id, item id), or raise signing.BadSignature."""
    recipient_id, item_id = signing.loads(token, salt=NOT_INTERESTED_SALT)
    return int(recipient_id), int(item_id)


def unsubscribe_token(recipient_id):
    return signing.dumps(recipient_id, salt=UNSUBSCRIBE_SALT)


def unsubscribe_url(recipient_id):
    return settings.SITE_URL.rstrip("/") + reverse("campaigns:unsubscribe", args=[unsubscribe_token(recipient_id)])


def unsubscribe_read(token):
    return int(signing.loads(token, salt=UNSUBSCRIBE_SALT))


def item_shop_url(item):
    """Where an item link lands: the item's own URL attribute, else SHOP_ITEM_URL with its id."""
    return (item.attributes or {}).get("url") or settings.SHOP_ITEM_URL.format(external_id=item.external_id)
