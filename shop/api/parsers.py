from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


def _has_nul(value):
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class ShopJSONParser(JSONParser):
    """JSON, without NUL characters anywhere (keys included): PostgreSQL stores none in text or jsonb.

    Refused as the whole request's 400 before any row is read, rather than a server error halfway through
    the batch's COPY or upsert (schemathesis sends them: tests/shop/test_api_schema.py).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        data = super().parse(stream, media_type, parser_context)
        if _has_nul(data):
            raise ParseError("JSON strings may not contain NUL (\\u0000) characters.")
        return data
