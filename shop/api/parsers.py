import codecs
import io
import re

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# NUL: PostgreSQL stores none in text or jsonb. A lone surrogate (JSON's "\ud800" without its pair) is no
# character at all: it cannot be encoded as UTF-8 for the database or for Arrow.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In a JSON body that parses, a NUL or a surrogate can only come from an escape (raw control characters are
# invalid JSON, raw surrogates invalid UTF-8): a body without these escapes needs no walk of its strings.
# `\\u0000` (an escaped backslash, then "u0000") matches too: that body is walked, and passes.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def unstorable(text):
    """True when a text holds a character the database cannot store (NUL, a lone surrogate)."""
    return bool(_UNSTORABLE.search(text))


def _first_unstorable(value, path="body"):
    """(where, what) of the first string (or key) that cannot be stored, or None."""
    if isinstance(value, str):
        found = _UNSTORABLE.search(value)
        if found:
            char = found.group()
            return path, "a NUL (\\u0000) character" if char == "\x00" else f"a lone surrogate (\\u{ord(char):04x})"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            bad = _first_unstorable(key, f"{path} (a key)") or _first_unstorable(item, f"{path}.{key}")
            if bad:
                return bad
    if isinstance(value, list):
        for n, item in enumerate(value):
            bad = _first_unstorable(item, f"{path}[{n}]")
            if bad:
                return bad
    return None


class ShopJSONParser(JSONParser):
    """JSON whose strings (keys included) can all be stored: no NUL character, no lone surrogate.

    Refused as the whole request's 400, naming the row and field (e.g. `body.events[3].customer`), before
    any row is read, rather than a server error halfway through the batch's COPY or upsert (schemathesis
    sends them: tests/shop/test_api_schema.py).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        if stream is None or codecs.lookup(encoding).name != "utf-8":
            data, body = super().parse(stream, media_type, parser_context), None
        else:
            body = stream.read()
            data = super().parse(io.BytesIO(body), media_type, parser_context)
        if body is not None and not _UNSTORABLE_ESCAPE.search(body):
            return data  # walking a batch of 1,000 events' strings took ~20 ms of each request
        bad = _first_unstorable(data)
        if bad:
            where, what = bad
            raise ParseError(f"{where} contains {what}, which cannot be stored; nothing was stored.")
        return data
