"""Signed links: the faster signer gives Django's own tokens byte for byte, so links already sent keep working."""

import random

import pytest
from django.core import signing
from django.urls import reverse, set_script_prefix

from campaigns import links

CASES = [
    (links.click_token, links.CLICK_SALT, (7, 42), [7, 42]),
    (links.not_interested_token, links.NOT_INTERESTED_SALT, (123456789, 98765), [123456789, 98765]),
    (links.unsubscribe_token, links.UNSUBSCRIBE_SALT, (31,), 31),
]


@pytest.mark.parametrize(("token_of", "salt", "args", "value"), CASES)
def test_tokens_are_djangos_signer_tokens(token_of, salt, args, value):
    expected = signing.Signer(salt=salt).sign_object(value, compress=True)
    assert token_of(*args) == expected
    assert signing.Signer(salt=salt).unsign_object(token_of(*args)) == value


def test_a_new_secret_key_signs_with_the_new_key(settings):
    before = links.click_token(1, 2)
    settings.SECRET_KEY = "another secret key for this test, long enough to be one"
    after = links.click_token(1, 2)
    assert after != before
    assert after == signing.Signer(salt=links.CLICK_SALT).sign_object([1, 2], compress=True)
    assert links.click_read(after) == (1, 2)
    with pytest.raises(signing.BadSignature):
        links.click_read(before)  # signed with the old key, which is not among the fallbacks


def test_urls_are_reverses_urls(settings):
    settings.SITE_URL = "https://promo.example.test/"
    token = links.click_token(5, 6)
    assert links.click_url(5, 6) == "https://promo.example.test" + reverse("campaigns:click", args=[token])
    token = links.not_interested_token(5, 6)
    assert links.not_interested_url(5, 6) == "https://promo.example.test" + reverse(
        "campaigns:not_interested", args=[token]
    )
    assert links.unsubscribe_url(5) == "https://promo.example.test" + reverse(
        "campaigns:unsubscribe", args=[links.unsubscribe_token(5)]
    )


def test_a_script_prefix_is_kept():
    set_script_prefix("/promo/")
    try:
        url = links.unsubscribe_url(9)
        assert "/promo/" in url
        assert url.endswith(reverse("campaigns:unsubscribe", args=[links.unsubscribe_token(9)]))
    finally:
        set_script_prefix("/")


def test_a_forged_token_is_refused():
    token = links.click_token(1, 2)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    with pytest.raises(signing.BadSignature):
        links.click_read(forged)


def test_a_messages_links_are_the_single_links(settings):
    settings.SITE_URL = "https://promo.example.test"
    items, unsubscribe = links.message_links(77, [3, 4])
    assert items == [
        (links.click_url(77, 3), links.not_interested_url(77, 3)),
        (links.click_url(77, 4), links.not_interested_url(77, 4)),
    ]
    assert unsubscribe == links.unsubscribe_url(77)


def test_tokens_are_djangos_where_compression_shortens_the_payload_and_where_it_does_not():
    # given ids of every length, random and with runs of one digit (the payloads zlib shortens)
    rng = random.Random(15)
    runs = [int(str(d) * n) for d in range(1, 10) for n in range(1, 13)]
    ids = runs + [rng.randrange(10 ** rng.randrange(1, 13)) for _ in range(300)]
    cases = [[rng.choice(ids), rng.choice(ids)] for _ in range(1500)] + [[i, i] for i in runs]
    signer = signing.Signer(salt=links.CLICK_SALT)
    compressed = 0
    for value in cases:
        # when
        token = links.click_token(*value)
        # then
        assert token == signer.sign_object(value, compress=True)
        compressed += token.startswith(".")
    assert compressed > 10  # the compressed branch was taken, not only the plain one
    for recipient_id in runs + ids[:100]:
        assert links.unsubscribe_token(recipient_id) == signing.Signer(salt=links.UNSUBSCRIBE_SALT).sign_object(
            recipient_id, compress=True
        )


def test_padded_links_are_never_shorter_than_the_real_ones_and_as_long_where_nothing_compresses(settings):
    # given ids of every length, random and with runs of one digit (whose tokens zlib shortens)
    settings.SITE_URL = "https://promo.example.test"
    rng = random.Random(16)
    runs = [int(str(d) * n) for d in range(1, 10) for n in range(1, 13)]
    ids = runs + [rng.randrange(10 ** rng.randrange(1, 13)) for _ in range(300)]
    for recipient_id in [rng.choice(ids) for _ in range(300)] + runs:
        item_ids = [rng.choice(ids) for _ in range(rng.randrange(0, 6))]
        # when
        (items, unsubscribe), (padded, padded_unsubscribe) = (
            links.message_links(recipient_id, item_ids),
            links.message_links_padded(recipient_id, item_ids),
        )
        # then each padded link keeps the real one's route, with a token at least as long
        pairs = [(u, p) for real, pad in zip(items, padded) for u, p in zip(real, pad)]
        pairs.append((unsubscribe, padded_unsubscribe))
        assert len(padded) == len(items)
        for real, pad in pairs:
            assert len(pad) >= len(real)
            token = real.rstrip("/").rsplit("/", 1)[-1]
            assert pad == real.replace(token, "x" * (len(pad) - len(real) + len(token)))
            if not token.startswith("."):  # uncompressed: the bound is the length
                assert len(pad) == len(real)
