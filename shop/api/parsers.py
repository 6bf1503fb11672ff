import re

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# NUL: PostgreSQL stores none in text or jsonb. A lone surrogate (JSON's "\ud800" without its pair) is no
# character at all: it cannot be encoded as UTF-8 for the database or for Arrow.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


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
        data = super().parse(stream, media_type, parser_context)
        bad = _first_unstorable(data)
        if bad:
            where, what = bad
            raise ParseError(f"{where} contains {what}, which cannot be stored; nothing was stored.")
        return data
