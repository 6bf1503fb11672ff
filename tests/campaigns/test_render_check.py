"""Generation's render check (campaigns/render_check.py) gives every recipient the verdict of a full render."""

import random
from datetime import datetime
from types import SimpleNamespace
from unittest import mock

import pytest

from campaigns import links
from campaigns.messages import BatchMessages
from campaigns.models import Batch
from campaigns.models.campaigns import DEFAULT_BODY, DEFAULT_SUBJECT
from campaigns.render_check import RenderCheck
from campaigns.rendering import MessageRenderer, TemplateProblem, message_context

TEMPLATES = [
    (DEFAULT_SUBJECT, DEFAULT_BODY),
    ("{{ customer.name }}", "{% for item in items %}{{ item.title|truncatechars:12 }}{{ item.url }}{% endfor %}"),
    ("Hi", "{% for item in items %}{% if item.title == 'Tea' %}{{ item.nope }}{% endif %}{{ item.title }}{% endfor %}"),
    ("Hi", "{{ items.0.title }} {{ items.2.price }} {{ customer.name.upper }} {{ unsubscribe_url }}"),
    ("Hi", "{% if items|length > 2 %}{{ item.title }}{% endif %}{% for item in items %}{{ item }}{% endfor %}"),
    ("{{ customer.first_name|default:'x' }}", "{% for c in customer.name %}{{ c }}{% endfor %}{{ promotion.code }}"),
    ("Hi", "{% with t=customer.email %}{{ t }}{% endwith %}"),
    ("Hi", "{% spaceless %}<p> {{ customer.name }} </p>{% endspaceless %}"),
    ("Hi", "{% for item in items %}{% for x in items %}{{ x.because }}{% endfor %}{{ forloop.counter }}{% endfor %}"),
    ("Hi", "{% if not customer.name or item.reason %}{{ item.reason }}{% endif %}{{ customer.email|slice:'-3' }}"),
    ("{{ promotion.expires|date:'j F Y' }}", "{% for customer in items %}{{ customer.name }}{% endfor %}"),
    ("Hi", "{% for item in items %}{{ item.price|floatformat:2 }}{% endfor %}"),
]
WORDS = ["", "Tea", "Tea & biscuits", "<b>x</b>", "\"quoted\" 'single'", "é" * 30, "x" * 200, "Earl Grey 500 g"]


def random_context(rng):
    def text():
        return rng.choice(WORDS)

    items = [
        {
            "title": text(),
            "price": rng.choice(["", "9.99", "abc", "1e3"]),
            "image_url": rng.choice(["", "https://shop.example.test/i.jpg"]),
            "because": text(),
            "reason": text(),
            "url": f"https://promo.example.test/r/{rng.randrange(10**9)}:sig/",
            "not_interested_url": f"https://promo.example.test/n/{rng.randrange(10**6)}/",
        }
        for _ in range(rng.randrange(0, 6))
    ]
    customer = type("Customer", (), {"name": rng.choice(["", "Alex Sample", "Zoë & co", "a " * 40]),
                                     "email": rng.choice(["a@example.test", "x" * 90 + "@example.test"])})  # fmt: skip
    promotion = {"name": text(), "description": text(), "discount_text": "15% off",
                 "expires": rng.choice([None, datetime(2030, 1, 31)])}  # fmt: skip
    return message_context(
        customer=customer, promotion=promotion, code=rng.choice(["", "ABC-123", "<&>"]), items=items,
        unsubscribe_url=f"https://promo.example.test/u/{rng.randrange(10**9)}/",
    )  # fmt: skip


def verdict(function, context):
    try:
        function(context)
    except TemplateProblem as problem:
        return str(problem)
    return None


@pytest.mark.parametrize("templates", TEMPLATES)
def test_it_fails_exactly_the_messages_a_full_render_fails(settings, templates):
    # given a size limit that some of the messages pass (their fields' lengths vary) and some do not
    settings.MESSAGE_MAX_BYTES = 420
    renderer = MessageRenderer(*templates)
    check = RenderCheck(renderer)
    rng = random.Random(templates[1])
    verdicts = set()
    for _ in range(300):
        context = random_context(rng)
        # when / then
        want = verdict(renderer.render_html, context)
        assert verdict(check.check, context) == want
        verdicts.add(want)
    assert len(verdicts) >= 1


def test_the_default_templates_render_once_per_shape_and_catch_an_oversized_message(settings):
    # given the default templates and recipients who differ in their name, links and titles
    renderer = MessageRenderer(DEFAULT_SUBJECT, DEFAULT_BODY)
    check = RenderCheck(renderer)
    rng = random.Random(1)
    contexts = [random_context(rng) for _ in range(300)]
    for context in contexts:  # every item has its image (which the default body tests for)
        context["items"] = [dict(item, image_url="https://shop.example.test/i.jpg") for item in context["items"]]
    for context in contexts:
        check.check(context)
    # then there is one render per number of items (0 to 5), expiry date or none, and first name or none
    # (an empty one writes the |default's word)
    assert check.written and len(check.shapes) <= 24
    # and a message made too long by one title alone fails, the others of its shape pass
    settings.MESSAGE_MAX_BYTES = len(renderer.render_html(contexts[0])[1].encode()) + 10
    longer = {**contexts[0], "items": [dict(item, title=item["title"] + "x" * 11) for item in contexts[0]["items"]]}
    if longer["items"]:
        with pytest.raises(TemplateProblem, match="longer than"):
            check.check(longer)
        assert verdict(renderer.render_html, longer) is not None
    check.check(contexts[0])


def test_an_empty_field_written_with_a_default_counts_the_defaults_word(settings):
    # given the default templates, which greet with the first name or "there", and a customer with no name
    renderer = MessageRenderer(DEFAULT_SUBJECT, DEFAULT_BODY)
    context = random_context(random.Random(3))
    context["customer"] = {"first_name": "", "name": "", "email": "a@example.test"}
    size = len(renderer.render_html(context)[1].encode())
    # when the limit is one byte short of the message, then the check fails it as a render does
    settings.MESSAGE_MAX_BYTES = size - 1
    with pytest.raises(TemplateProblem, match="longer than"):
        RenderCheck(renderer).check(context)
    settings.MESSAGE_MAX_BYTES = size
    RenderCheck(renderer).check(context)


def test_templates_with_a_tag_it_does_not_follow_render_every_message():
    check = RenderCheck(MessageRenderer("Hi", "{% with t=customer.email %}{{ t }}{% endwith %}"))
    assert check.written is None
    check.check(random_context(random.Random(2)))
    assert not check.shapes


def batch_messages(subject, body):
    """BatchMessages of a batch that is only its templates and one promotion's wording (no database)."""
    batch = SimpleNamespace(
        rendering=Batch.Rendering.ON_DEMAND,
        message_snapshot={"promotions": {"1": {"name": "Tea", "description": "", "discount_text": "15% off"}}},
        settings=SimpleNamespace(subject_template=subject, body_template=body),
    )
    return BatchMessages(batch)


def random_row(rng):
    # ids with runs of one digit give tokens that zlib shortens, so padded links are longer than the real ones
    ids = [int(str(rng.randrange(1, 10)) * rng.randrange(1, 12)), rng.randrange(1, 10**9)]
    items = [{"item_id": rng.choice(ids), "title": rng.choice(WORDS), "price": "9.99", "image_url": "",
              "because": "", "reason": ""} for _ in range(rng.randrange(0, 6))]  # fmt: skip
    customer = SimpleNamespace(name=rng.choice(["", "Alex Sample", "a " * 40]), email="a@example.test")
    return SimpleNamespace(id=rng.choice(ids), items=items, promotion_id=1, code="TEA15", customer=customer)


@pytest.mark.parametrize(
    "body",
    [
        DEFAULT_BODY,
        "{% for item in items %}{% if item.url %}{{ item.url }}{% endif %}{{ item.not_interested_url }}{% endfor %}",
        "{% for item in items %}{{ item.url|truncatechars:60 }}{{ item.title }}{% endfor %}{{ unsubscribe_url }}",
    ],
)
def test_batch_messages_check_gives_each_row_the_verdict_of_rendering_it_with_its_real_links(settings, body):
    # given messages near the size limit, which some pass and some do not by a few bytes of their links
    messages = batch_messages(DEFAULT_SUBJECT, body)
    rng = random.Random(body)
    rows = [random_row(rng) for _ in range(400)]
    sizes = sorted(len(messages.renderer.render_html(messages.context(row))[1].encode()) for row in rows)
    settings.MESSAGE_MAX_BYTES = sizes[len(sizes) // 2]
    verdicts = set()
    for row in rows:
        # when / then
        want = verdict(messages.renderer.render_html, messages.context(row))
        assert verdict(messages.check, row) == want
        verdicts.add(want)
    assert len(verdicts) >= 2


def test_batch_messages_check_signs_no_link_where_the_templates_only_write_them_and_the_message_fits():
    # given the default templates, which only write the links out
    messages = batch_messages(DEFAULT_SUBJECT, DEFAULT_BODY)
    assert messages.render_check.links_only_written
    rows = [random_row(random.Random(n)) for n in range(20)]
    # when the rows are checked with signing out of reach, then none needs it
    with mock.patch.object(links, "message_links", side_effect=AssertionError("signed")):
        for row in rows:
            messages.check(row)
    # and a template that filters a link signs them, to read their text
    assert not batch_messages("Hi", "{{ unsubscribe_url|upper }}").render_check.links_only_written
