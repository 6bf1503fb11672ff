"""Generation's render check (campaigns/render_check.py) gives every recipient the verdict of a full render."""

import random
from datetime import datetime

import pytest

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
    # then there is one render per number of items (0 to 5) and first name or none
    assert check.written and len(check.shapes) <= 12
    # and a message made too long by one title alone fails, the others of its shape pass
    settings.MESSAGE_MAX_BYTES = len(renderer.render_html(contexts[0])[1].encode()) + 10
    longer = {**contexts[0], "items": [dict(item, title=item["title"] + "x" * 11) for item in contexts[0]["items"]]}
    if longer["items"]:
        with pytest.raises(TemplateProblem, match="longer than"):
            check.check(longer)
        assert verdict(renderer.render_html, longer) is not None
    check.check(contexts[0])


def test_templates_with_a_tag_it_does_not_follow_render_every_message():
    check = RenderCheck(MessageRenderer("Hi", "{% with t=customer.email %}{{ t }}{% endwith %}"))
    assert check.written is None
    check.check(random_context(random.Random(2)))
    assert not check.shapes
