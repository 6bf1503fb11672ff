"""Message templates, rendered safely.

Templates use Django's template language in an engine of their own: autoescaping on, no template
loaders (so no include/extends), and a context made only of plain strings, numbers and dicts, so a
template can read the documented fields below and nothing else. A field that does not exist is an
error (at save time against a sample, and per recipient at generation time), never a silent blank.

Marketers' templates run in our web and worker processes, so what they may do is bounded (a template
with a billion-step loop once killed a web worker). Rather than a list of what is forbidden, the engine
knows only an allowed set of tags and filters (TAGS, FILTERS): no {% lorem %}, {% debug %},
{% autoescape %}, |safe, nor filters that make a long text from a short one (|ljust, |stringformat,
|add of texts). On that set, each step is small, and three budgets per render bound the whole:
every {% for %} of one render together runs at most MAX_LOOP_ITERATIONS times (charged when a loop
starts, before it runs), a filter's result is at most MAX_VALUE_CHARS long, and every loop start and
filter call checks the render's deadline (MESSAGE_RENDER_MAX_MS). The output is at most
MESSAGE_MAX_BYTES. Python cannot stop a thread from outside, so the deadline is cooperative: it holds
because no single step between two checks can take long.
"""

import contextvars
import functools
import re
import time
from datetime import datetime
from decimal import Decimal
from html import unescape

from django.conf import settings
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import Lexer, TokenType

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
    "item.reason": "why it is shown: how often and when they buy it, or what led to it",
    "unsubscribe_url": "the customer's one-click unsubscribe link",
}

MAX_SOURCE_CHARS = 100_000
MAX_LOOP_ITERATIONS = 1_000  # 20 items in 3 nested loops would be 8,000: no message needs that
MAX_VALUE_CHARS = 10_000
# The tags a template may use, with the words that close or divide them.
TAGS = {
    "if": ("elif", "else", "endif"),
    "for": ("empty", "endfor"),
    "with": ("endwith",),
    "comment": ("endcomment",),
    "firstof": (),
    "spaceless": ("endspaceless",),
    "now": (),
}
FILTERS = [
    "capfirst", "cut", "date", "default", "default_if_none", "divisibleby", "escape", "first", "floatformat",
    "last", "length", "linebreaksbr", "lower", "pluralize", "slice", "striptags", "time", "title",
    "truncatechars", "truncatewords", "upper", "urlencode", "wordcount", "yesno",
]  # fmt: skip
_TAG_WORDS = set(TAGS) | {word for words in TAGS.values() for word in words}


class TemplateProblem(Exception):
    """A template that does not compile, uses a field that does not exist, or goes past a render limit."""


class _Budget:
    def __init__(self):
        self.deadline = time.monotonic() + settings.MESSAGE_RENDER_MAX_MS / 1000
        self.iterations = 0

    def check_time(self):
        if time.monotonic() > self.deadline:
            raise TemplateProblem(f"The template took longer than {settings.MESSAGE_RENDER_MAX_MS} ms to render.")

    def charge_loop(self, length):
        self.check_time()
        self.iterations += length
        if self.iterations > MAX_LOOP_ITERATIONS:
            raise TemplateProblem(f"The template's loops ran more than {MAX_LOOP_ITERATIONS:,} times in one message.")


_budget = contextvars.ContextVar("message_render_budget")


class _BoundedSequence:
    """What a {% for %} loops over: charged to the render's budget before the loop runs."""

    def __init__(self, sequence):
        self.sequence = sequence

    def resolve(self, context, ignore_failures=False):
        values = self.sequence.resolve(context, ignore_failures=ignore_failures)
        if values is None:
            return None
        values = values if hasattr(values, "__len__") else list(values)
        _budget.get().charge_loop(len(values))
        return values

    def __str__(self):
        return str(self.sequence)


def _bounded_for(parser, token):
    node = defaulttags.do_for(parser, token)
    node.sequence = _BoundedSequence(node.sequence)
    return node


def _bounded_filter(name, func):
    @functools.wraps(func)  # keeps is_safe, needs_autoescape, ... and the signature the parser checks
    def bounded(value, *args, **kwargs):
        _budget.get().check_time()
        result = func(value, *args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_VALUE_CHARS:
            raise TemplateProblem(f"|{name} made a value longer than {MAX_VALUE_CHARS:,} characters.")
        return result

    return bounded


def _floatformat(value, arg=-1):
    # floatformat:1000000000 would write a billion digits before any check could see them.
    digits = str(arg).rstrip("gu")
    if digits.lstrip("-").isdigit() and abs(int(digits)) > 20:
        raise TemplateProblem("|floatformat shows at most 20 decimal places.")
    return defaultfilters.floatformat(value, arg)


def _message_library():
    library = Library()
    for name in TAGS:
        library.tag(name, _bounded_for if name == "for" else defaulttags.register.tags[name])
    for name in FILTERS:
        func = _floatformat if name == "floatformat" else defaultfilters.register.filters[name]
        flags = {flag: getattr(func, flag, False) for flag in ("is_safe", "needs_autoescape", "expects_localtime")}
        library.filter(name, _bounded_filter(name, func), **flags)
    library.filter("add", _bounded_filter("add", _add_numbers), is_safe=False)
    return library


def _add_numbers(value, arg):
    """|add of numbers only: adding texts (or lists) in nested {% with %} doubles a value at each step."""
    try:
        return int(value) + int(arg)
    except (ValueError, TypeError):
        return ""


_engine = Engine(autoescape=True, string_if_invalid=UNDEFINED, libraries={}, loaders=[], debug=False)
_engine.template_builtins = [_message_library()]  # instead of Django's built-in tags and filters


def _compile(source):
    if len(source) > MAX_SOURCE_CHARS:
        raise TemplateProblem(f"A template is at most {MAX_SOURCE_CHARS:,} characters.")
    _tags_check(source)
    try:
        return _engine.from_string(source)
    except TemplateSyntaxError as error:
        unknown = re.match(r"Invalid filter: '(.*)'", str(error))
        if unknown:
            raise TemplateProblem(
                f"Template syntax error: the filter |{unknown[1]} is not allowed in message templates; "
                f"the filters are: {', '.join(sorted([*FILTERS, 'add']))}."
            ) from error
        raise TemplateProblem(f"Template syntax error: {error}") from error


def _tags_check(source):
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK or not token.contents.split():
            continue
        name = token.contents.split()[0]
        if name == "load":
            raise TemplateProblem("Tag libraries cannot be loaded in message templates.")
        if name not in _TAG_WORDS:
            raise TemplateProblem(
                f"The tag {{% {name} %}} (line {token.lineno}) is not allowed in message templates; "
                f"the tags are: {', '.join(TAGS)}."
            )


def _render(template, context):
    text = _raw_render(template, context)
    if len(text.encode()) > settings.MESSAGE_MAX_BYTES:
        raise TemplateProblem(f"The message is longer than {settings.MESSAGE_MAX_BYTES:,} bytes.")
    _unknown_fields_check(text)
    return text


def _raw_render(template, context):
    """The template's output within the render's budgets, before the checks on the output itself."""
    token = _budget.set(_Budget())
    try:
        return template.render(Context(context, autoescape=True))
    except TemplateProblem:
        raise
    except Exception as error:  # a filter given a bad argument, ...
        raise TemplateProblem(f"{type(error).__name__}: {error}") from error
    finally:
        _budget.reset(token)


def _unknown_fields_check(text):
    unknown = sorted(set(_UNDEFINED_RE.findall(text)))
    if unknown:
        raise TemplateProblem(f"Unknown field(s): {', '.join(unknown)}. The fields are: {', '.join(FIELDS)}.")


def sample_context():
    item = {
        "title": "Sample item",
        "price": "9.99",
        "image_url": "https://shop.example.test/img/sample.jpg",
        "url": "https://promo.example.test/r/sample/",
        "not_interested_url": "https://promo.example.test/n/sample/",
        "because": "Another item",
        "reason": "you buy this about every 12 days; last time 9 days ago",
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


def promotion_fields(promotion):
    """A promotion's wording as a message shows it (what a batch's snapshot keeps): JSON-ready."""
    return {
        "name": promotion.name,
        "description": promotion.description,
        "discount_text": promotion.discount_text,
        "expires": promotion.ends_at.isoformat() if promotion.ends_at else None,
    }


def message_context(*, customer, promotion, code, items, unsubscribe_url):
    """The context of one message. `promotion`: its promotion_fields(); `items`: dicts with title, price,
    image_url, url, not_interested_url, because, reason."""
    name = customer.name or ""
    expires = promotion.get("expires")
    return {
        "customer": {"first_name": name.split()[0] if name.split() else "", "name": name, "email": customer.email},
        "promotion": {
            "name": promotion["name"],
            "description": promotion["description"],
            "discount_text": promotion["discount_text"],
            "code": code,
            "expires": datetime.fromisoformat(expires) if isinstance(expires, str) else expires,
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
        subject, html = self.render_html(context)
        return subject, html, html_to_text(html)

    def render_html(self, context):
        """(subject, html), without the plain-text part (which cannot fail): what a render check needs."""
        # The subject is a header, not HTML: what autoescaping wrote as "&amp;" is an "&" there.
        return unescape(" ".join(_render(self.subject, context).split())), _render(self.body, context)


# A comment, or a tag: "<" then a letter, "/", "!" or "?", up to the ">" outside quoted attribute values. What
# Django's strip_tags removes from well-formed HTML (tests/campaigns/test_html_to_text.py compares the two), at a
# tenth of its cost: its HTMLParser was the largest part of a sender's work per message.
_TAG = re.compile(r"""<!--.*?-->|<[a-zA-Z/!?](?:[^>"']|"[^"]*"|'[^']*')*>""", re.DOTALL)


def html_to_text(html):
    """The plain-text part of a message: paragraphs and rows on lines of their own, tags dropped."""
    text = re.sub(r"</p>|</h\d>", "\n\n", html, flags=re.IGNORECASE)
    text = re.sub(r"<br\s*/?>|</tr>", "\n", text, flags=re.IGNORECASE)
    text = unescape(_TAG.sub("", text))  # the plain-text part says "&", not "&amp;"
    text = "\n".join(line.strip() for line in re.sub(r"[ \t\xa0]+", " ", text).splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()
