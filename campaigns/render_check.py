"""Generation's render check, with one render per shape of message instead of one per recipient.

Generation renders every recipient's message to find the ones that fail (campaigns/messages.py); rendering
is most of its cost. What can fail a message: a template error or a render limit (loops, a filter's value,
the deadline), an unknown field, and the size of each part (MESSAGE_MAX_BYTES). This check reaches the same
verdict as rendering each message, from far fewer renders:

- It reads the compiled templates once and finds, for each field of the context (customer.name,
  items.*.url, ...), how the templates use it: only written out as it is (``{{ item.url }}``, or with
  ``|default:"literal"``), only tested for truth (``{% if item.image_url %}``), or anything else (a filter,
  a comparison, a lookup into it, a loop over it, a tag this module does not follow).
- A field used only in the first two ways cannot change which nodes run, which filters fail, or any
  value but its own text in the output: its text is escaped and written where the field stands. Such a
  field's text is replaced by a placeholder (a NUL byte, its number and a byte 1: nothing stored in
  PostgreSQL contains a NUL, so a NUL starts a placeholder and nothing else), and the message is rendered
  once per distinct result (its "shape": the other fields' values, the number of items, which of the fields
  tested for truth are empty).
- Per recipient, the size of each part is then the shape's size plus, for each placeholder, the times it
  appears there times the difference between the field's escaped text and the placeholder; an unknown
  field or a failed render is the shape's.

A field whose text is longer than MAX_VALUE_CHARS (a |default result that long fails the render) or that
holds a NUL, a value that is not text, or templates that use any tag besides if, for and comment send the
message to a full render. The deadline is checked on the shape's render: it is a bound on the machine's
time, not a property of the recipient.
"""

import html
from collections import defaultdict

from django.conf import settings
from django.template.base import TextNode, Variable, VariableNode
from django.template.defaulttags import CommentNode, ForNode, IfNode, TemplateLiteral

from campaigns.rendering import MAX_VALUE_CHARS, TemplateProblem, _engine, _raw_render, _unknown_fields_check

ROOTS = ("customer", "promotion", "items", "unsubscribe_url")
FIELDS = {
    "customer": ("first_name", "name", "email"),
    "promotion": ("name", "description", "discount_text", "code", "expires"),
    "items": ("title", "price", "image_url", "because", "reason", "url", "not_interested_url"),
}
LEAVES = {
    *((root, field) for root in ("customer", "promotion") for field in FIELDS[root]),
    *(("items", "*", field) for field in FIELDS["items"]),
    ("unsubscribe_url",),
}
LINKS = {("items", "*", "url"), ("items", "*", "not_interested_url"), ("unsubscribe_url",)}
PLAIN, TRUTH, VALUE = "plain", "truth", "value"
_OPAQUE = ()  # a loop variable over something else than items: what it holds is read through VALUE uses
_DEFAULT = _engine.template_builtins[0].filters["default"]
SHAPES_KEPT = 4096
ESCAPED_KEPT = 65536


class NotFollowed(Exception):
    """The templates do something whose effect this module does not follow: render every message."""


def field_uses(templates):
    """{leaf: {PLAIN, TRUTH, VALUE}} over the compiled templates; raises NotFollowed."""
    uses = defaultdict(set)
    for template in templates:
        _walk(template.nodelist, {}, uses)
    return uses


def _walk(nodelist, aliases, uses):
    for node in nodelist:
        if isinstance(node, (TextNode, CommentNode)):
            continue
        if isinstance(node, VariableNode):
            _expression(node.filter_expression, aliases, PLAIN, uses)
        elif isinstance(node, ForNode):
            sequence = getattr(node.sequence, "sequence", node.sequence)  # rendering._BoundedSequence
            inner = dict(aliases)
            if not sequence.filters and _pattern(sequence.var, aliases) == ("items",) and len(node.loopvars) == 1:
                inner[node.loopvars[0]] = ("items", "*")  # the number of items is part of the shape
            else:
                _expression(sequence, aliases, VALUE, uses)
                inner.update((name, _OPAQUE) for name in node.loopvars)
            _walk(node.nodelist_loop, inner, uses)
            _walk(node.nodelist_empty, aliases, uses)
        elif isinstance(node, IfNode):
            for condition, branch in node.conditions_nodelists:
                if condition is not None:
                    _condition(condition, aliases, TRUTH, uses)
                _walk(branch, aliases, uses)
        else:
            raise NotFollowed(type(node).__name__)


def _condition(condition, aliases, use, uses):
    if isinstance(condition, TemplateLiteral):
        _expression(condition.value, aliases, use, uses)
        return
    # "or" and "and" give one of their operands (read for truth where the whole is); "not" reads its
    # operand's truth; a comparison reads values.
    operand_use = use if condition.id in ("or", "and") else TRUTH if condition.id == "not" else VALUE
    for operand in (condition.first, condition.second):
        if operand is not None:
            _condition(operand, aliases, operand_use, uses)


def _expression(expression, aliases, use, uses):
    filters = expression.filters
    if filters:
        default_of_literal = len(filters) == 1 and filters[0][0] is _DEFAULT and not filters[0][1][0][0]
        if use == PLAIN and default_of_literal:
            # |default:"x" writes the value, or "x" where it is empty: it tests the value's truth too, so that an
            # empty value stays in the shape (a placeholder there would stand for "x" as an empty text)
            _mark(expression.var, aliases, TRUTH, uses)
        else:
            use = VALUE
        for _func, arguments in filters:
            for lookup, argument in arguments:
                if lookup:
                    _mark(argument, aliases, VALUE, uses)
    _mark(expression.var, aliases, use, uses)


def _pattern(var, aliases):
    """The context path a variable reads, with items' positions as "*"; None for literals and names that are
    not the context's (forloop, an unknown name: the same in every render)."""
    if not isinstance(var, Variable) or var.lookups is None:
        return None
    root, *rest = var.lookups
    base = aliases.get(root, (root,) if root in ROOTS else None)
    if not base:
        return None
    return base + tuple("*" if base + tuple(rest[:n]) == ("items",) and part.isdigit() else part
                        for n, part in enumerate(rest))  # fmt: skip


def _mark(var, aliases, use, uses):
    pattern = _pattern(var, aliases)
    if pattern is None:
        return
    for n in range(1, len(pattern) + 1):
        if pattern[:n] in LEAVES:  # a lookup into a field's value (customer.name.upper) reads its value
            uses[pattern[:n]].add(use if n == len(pattern) else VALUE)
            return
    below = [leaf for leaf in LEAVES if leaf[: len(pattern)] == pattern]
    if not below or use == TRUTH:  # an unknown field, or a dict or the list tested for truth: the shape's
        return
    for leaf in below:  # anything else done with a part of the context reads all of it
        uses[leaf].add(VALUE)


class RenderCheck:
    """The render check of one batch's messages (MessageRenderer's templates), one render per shape."""

    def __init__(self, renderer):
        self.renderer = renderer
        self.templates = (renderer.subject, renderer.body)
        try:
            uses = field_uses(self.templates)
        except NotFollowed:
            uses = None
        # written: the fields shown only as they are (or tested for truth: truth), unread: those no template reads
        self.written = None if uses is None else {leaf for leaf in LEAVES if VALUE not in uses.get(leaf, ())}
        self.truth = set() if uses is None else {leaf for leaf in LEAVES if TRUTH in uses.get(leaf, ())}
        self.unread = set() if uses is None else {leaf for leaf in LEAVES if not uses.get(leaf)}
        # the links are only written out (or tested for truth: never empty), so only their length counts
        self.links_only_written = self.written is not None and LINKS <= self.written
        self.shapes = {}
        self._escaped = {}

    def check(self, context):
        """Raise TemplateProblem exactly where renderer.render_html(context) would."""
        shape = self._shape(context) if self.written is not None else None
        if shape is None:
            self.renderer.render_html(context)
            return
        key, shaped, deltas = shape
        if key not in self.shapes:
            if len(self.shapes) >= SHAPES_KEPT:
                self.shapes.clear()
            self.shapes[key] = [self._part(template, shaped, len(deltas)) for template in self.templates]
        for problem, size, counts, unknown in self.shapes[key]:
            if problem is not None:
                raise TemplateProblem(problem)
            if size + sum(count * deltas[n] for n, count in counts.items()) > settings.MESSAGE_MAX_BYTES:
                raise TemplateProblem(f"The message is longer than {settings.MESSAGE_MAX_BYTES:,} bytes.")
            if unknown is not None:
                raise TemplateProblem(unknown)

    @staticmethod
    def _part(template, shaped, placeholders):
        """(render problem, size in bytes, {placeholder number: times written}, unknown-field problem)."""
        try:
            text = _raw_render(template, shaped)
        except TemplateProblem as problem:
            return str(problem), 0, {}, None
        counts = {n: text.count(f"\x00{n}\x01") for n in range(placeholders)}
        try:
            _unknown_fields_check(text)
        except TemplateProblem as problem:
            return None, len(text.encode()), counts, str(problem)
        return None, len(text.encode()), counts, None

    def _shape(self, context):
        """(key, the context with placeholders, per placeholder its field's escaped text's bytes less its
        own), or None: render in full. The key holds every value of the shaped context, in order."""
        if set(context) != set(ROOTS) or any(set(item) != set(FIELDS["items"]) for item in context["items"]):
            return None
        deltas = []
        try:
            shaped = {root: self._fields(root, context[root], deltas) for root in ("customer", "promotion")}
            shaped["items"] = [self._fields("items", item, deltas) for item in context["items"]]
            shaped["unsubscribe_url"] = self._field(("unsubscribe_url",), context["unsubscribe_url"], deltas)
        except NotFollowed:
            return None
        key = (
            tuple(shaped["customer"].values()),
            tuple(shaped["promotion"].values()),
            tuple(tuple(item.values()) for item in shaped["items"]),
            shaped["unsubscribe_url"],
        )
        return key, shaped, deltas

    def _fields(self, root, values, deltas):
        prefix = ("items", "*") if root == "items" else (root,)
        return {name: self._field((*prefix, name), values[name], deltas) for name in FIELDS[root]}

    def _field(self, leaf, value, deltas):
        """The field's value in the shaped context: its placeholder where it is only written (and, where it is
        tested for truth, not empty); nothing where no template reads it."""
        if leaf in self.unread:
            return None
        if value is None or leaf not in self.written or (value == "" and leaf in self.truth):
            return value
        if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS or "\x00" in value:
            raise NotFollowed(leaf)
        placeholder = f"\x00{len(deltas)}\x01"
        deltas.append(self._escaped_bytes(value) - len(placeholder))
        return placeholder

    def _escaped_bytes(self, value):
        """len(html.escape(value).encode()) (django.utils.html.escape's text is html.escape's), kept per text:
        items' wording, a promotion's and the padded links recur from one message to the next."""
        size = self._escaped.get(value)
        if size is None:
            if len(self._escaped) >= ESCAPED_KEPT:
                self._escaped.clear()
            size = self._escaped[value] = len(html.escape(value).encode())
        return size
