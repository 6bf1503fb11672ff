"""Message templates, rendered safely.

Templates use Django's template language in an engine of their own: autoescaping on, no template
loaders (so no include/extends), no tag libraries beyond the built-ins, and a context made only of
plain strings, numbers and dicts, so a template can read the documented fields below and nothing
else. A field that does not exist is an error (at save time against a sample, and per recipient at
generation time), never a silent blank.
"""

import re
from datetime import datetime
from decimal import Decimal

from django.template import Context, Engine, TemplateSyntaxError
from django.utils.html import strip_tags

UNDEFINED = "\x00undefined:%s\x00"
_UNDEFINED_RE = re.compile("\x00undefined:(.*?)\x00")

# The documented fields: shown under the campaign form, and the only names a template may use.
FIELDS = {
    "customer.first_name": "first name (the first word of the name; may be empty)",
    "customer.name": "full name",
    "customer.email": "e-mail address",
    "promotion.name": "the promotion's name",
    "promotion.description": "its description",
    "promotion.discount_text": "the offer in words, e.g. '15% off'",
    "promotion.code": "the code: the shared code, or this customer's own code from the pool",
    "promotion.expires": 'when it ends (a date: use |date:"j F Y")',
    "items": "the recommended items; loop with {% for item in items %}",
    "item.title": "an item's title",
    "item.price": "its price",
    "item.image_url": "its image",
    "item.url": "a tracked link to it",
    "item.not_interested_url": "a link to say 'not interested' in it (later messages leave it out)",
    "item.because": "the customer's past item that led to it, if any",
    "unsubscribe_url": "the customer's one-click unsubscribe link",
}

_engine = Engine(autoescape=True, string_if_invalid=UNDEFINED, libraries={}, loaders=[], debug=False)


class TemplateProblem(Exception):
    """A template that does not compile, or uses a field that does not exist."""


def _compile(source):
    if "{% load" in source or "{%load" in source:
        raise TemplateProblem("Tag libraries cannot be loaded in message templates.")
    try:
        return _engine.from_string(source)
    except TemplateSyntaxError as error:
        raise TemplateProblem(f"Template syntax error: {error}") from error


def _render(template, context):
    try:
        text = template.render(Context(context, autoescape=True))
    except Exception as error:  # a filter given a bad argument, an include of nothing, ...
        raise TemplateProblem(f"{type(error).__name__}: {error}") from error
    unknown = sorted(set(_UNDEFINED_RE.findall(text)))
    if unknown:
        raise TemplateProblem(f"Unknown field(s): {', '.join(unknown)}. The fields are: {', '.join(FIELDS)}.")
    return text


def sample_context():
    item = {
        "title": "Sample item",
        "price": "9.99",
        "image_url": "https://shop.example.test/img/sample.jpg",
        "url": "https://promo.example.test/r/sample/",
        "not_interested_url": "https://promo.example.test/n/sample/",
        "because": "Another item",
    }
    return {
        "customer": {"first_name": "Alex", "name": "Alex Sample", "email": "alex@example.test"},
        "promotion": {
            "name": "Sample promotion",
            "description": "",
            "discount_text": "15% off",
            "code": "SAMPLE-CODE",
            "expires": datetime(2030, 1, 31),
        },
        "items": [item, dict(item, title="Second item")],
        "unsubscribe_url": "https://promo.example.test/u/sample/",
    }


def template_check(source):
    """Raise TemplateProblem when `source` does not compile or does not render against a sample."""
    _render(_compile(source), sample_context())


def message_context(*, customer, promotion, code, items, unsubscribe_url):
    """The context of one message; `items` are dicts with title, price, image_url, url, not_interested_url, because."""
    name = customer.name or ""
    return {
        "customer": {"first_name": name.split()[0] if name.split() else "", "name": name, "email": customer.email},
        "promotion": {
            "name": promotion.name,
            "description": promotion.description,
            "discount_text": promotion.discount_text,
            "code": code,
            "expires": promotion.ends_at,
        },
        "items": [
            {key: str(value) if isinstance(value, Decimal) else value for key, value in item.items()} for item in items
        ],
        "unsubscribe_url": unsubscribe_url,
    }


class MessageRenderer:
    """Compiles a campaign's templates once and renders them per recipient."""

    def __init__(self, subject_template, body_template):
        self.subject = _compile(subject_template)
        self.body = _compile(body_template)

    def render(self, context):
        """(subject, html, text); raises TemplateProblem."""
        subject = " ".join(_render(self.subject, context).split())
        html = _render(self.body, context)
        return subject, html, html_to_text(html)


def html_to_text(html):
    text = re.sub(r"</p>|</h\d>", "\n\n", html, flags=re.IGNORECASE)
    text = re.sub(r"<br\s*/?>|</tr>", "\n", text, flags=re.IGNORECASE)
    text = strip_tags(text)
    text = "\n".join(line.strip() for line in re.sub(r"[ \t]+", " ", text).splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()
