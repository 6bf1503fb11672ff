import io

import pytest
from django.core.exceptions import ValidationError

from campaigns.models import PromotionCode
from campaigns.rendering import MessageRenderer, TemplateProblem, sample_context, template_check
from campaigns.services.codes import codes_generate, codes_upload
from tests.campaigns.conftest import promotion


@pytest.fixture
def pool(db):
    return promotion(name="pool", code_mode="pool", shared_code="")


def test_generated_codes_are_unique_and_counted(pool):
    assert codes_generate(promotion=pool, count=2500, prefix="SPRING-") == 2500
    codes = list(pool.codes.values_list("code", flat=True))
    assert len(set(codes)) == 2500 and all(c.startswith("SPRING-") for c in codes)


def test_an_upload_adds_every_code_of_a_clean_file(pool):
    added = codes_upload(promotion=pool, file=io.BytesIO(b"code\nAAAA-1\nBBBB-2\n\nCCCC-3\n"))
    assert added == 3 and pool.codes_available() == 3


def test_a_bad_upload_names_each_line_and_adds_nothing(pool):
    PromotionCode.objects.create(promotion=promotion(name="other", code_mode="pool", shared_code=""), code="TAKEN-1")
    bad = io.BytesIO(b"GOOD-001\nno spaces allowed\nGOOD-001\nTAKEN-1\n")
    with pytest.raises(ValidationError) as error:
        codes_upload(promotion=pool, file=bad)
    text = " ".join(error.value.messages)
    assert "Nothing was added: 3 problem(s)" in text
    assert "line 2: 'no spaces allowed' is not a code" in text
    assert "line 3: 'GOOD-001' repeats line 1" in text
    assert "line 4: 'TAKEN-1' exists already" in text
    assert pool.codes.count() == 0


def test_an_empty_or_binary_upload_is_refused(pool):
    with pytest.raises(ValidationError, match="no codes"):
        codes_upload(promotion=pool, file=io.BytesIO(b"code\n\n"))
    with pytest.raises(ValidationError, match="not UTF-8"):
        codes_upload(promotion=pool, file=io.BytesIO(b"\xff\xfe\x00\x81"))


def test_values_are_escaped():
    context = sample_context()
    context["customer"]["name"] = "<script>alert(1)</script>"
    _subject, html, _text = MessageRenderer("Hi", "<p>{{ customer.name }}</p>").render(context)
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.parametrize(
    "source, message",
    [
        ("{{ customer.nme }}", r"Unknown field\(s\): customer.nme"),
        ("{% load static %}", "cannot be loaded"),
        ("{% include 'admin/base.html' %}", r"The tag \{% include %\} \(line 1\) is not allowed"),
        ("{% if %}", "syntax error"),
        ("{{ promotion.expires|date:'Y'|undefinedfilter }}", "syntax error"),
    ],
)
def test_a_template_problem_is_explained(source, message):
    with pytest.raises(TemplateProblem, match=message):
        template_check(source)


def test_the_text_part_follows_the_html():
    _subject, _html, text = MessageRenderer("s", "<p>Hello <b>you</b></p><p>Second</p>").render(sample_context())
    assert text == "Hello you\n\nSecond"


def test_the_text_part_and_the_subject_decode_html_entities():
    context = sample_context()
    context["customer"]["name"] = "Tom & Jerry's <Shop>"
    subject, html, text = MessageRenderer(
        "For {{ customer.name }}", "<p>{{ customer.name }} &mdash; 5&nbsp;&euro; off</p>"
    ).render(context)
    assert "Tom &amp; Jerry&#x27;s &lt;Shop&gt;" in html  # the HTML stays escaped
    assert text == "Tom & Jerry's <Shop> — 5 € off"
    assert subject == "For Tom & Jerry's <Shop>"


@pytest.mark.parametrize(
    "source, message",
    [
        ("{% lorem 2000000 w %}", r"The tag \{% lorem %\} \(line 1\) is not allowed in message templates"),
        ("Hi\n{% debug %}", r"The tag \{% debug %\} \(line 2\) is not allowed"),
        ("{% autoescape off %}{{ customer.name }}{% endautoescape %}", r"The tag \{% autoescape %\}"),
        ("{% comment %}{% lorem %}{% endcomment %}", r"\{% lorem %\}"),
        ("{{ customer.name|safe }}", r"the filter \|safe is not allowed in message templates"),
        ("{% for i in items|safeseq %}{% endfor %}", r"the filter \|safeseq is not allowed"),
        ("{% for c in 'x'|ljust:1000000000 %}{% endfor %}", r"the filter \|ljust is not allowed"),
        ("{{ 1|stringformat:'01000000000d' }}", r"the filter \|stringformat is not allowed"),
        ("{{ 1.5|floatformat:1000000000 }}", r"\|floatformat shows at most 20 decimal places"),
    ],
)
def test_it_refuses_what_takes_a_service_down_or_unescapes(source, message):
    with pytest.raises(TemplateProblem, match=message):
        template_check(source)


def test_it_bounds_the_iterations_of_all_loops_of_a_render():
    # given loops in loops over the 11 letters of the sample's name: 11 + 121 + 1,331 steps
    letters = "{% for c in customer.name %}"
    source = letters * 3 + "{% endfor %}" * 3
    # when / then
    with pytest.raises(TemplateProblem, match="loops ran more than 1,000 times"):
        template_check(source)
    template_check(letters * 2 + "{{ c }}" + "{% endfor %}" * 2)  # 132 steps are fine


def test_it_refuses_a_value_that_doubles_in_nested_withs():
    # given texts that double at each step: |add now adds numbers only, so this stays short
    source = '{% with a="xxxxxxxxxx" %}' + "{% with a=a|add:a %}" * 40 + "{{ a }}" + "{% endwith %}" * 41
    assert MessageRenderer("s", source).render(sample_context())[1] == ""
    assert MessageRenderer("s", "{{ 2|add:3 }}").render(sample_context())[1] == "5"
    # and a filter whose result grows past the bound stops the render (4,000 "&" are 12,000 "%26")
    escapes = '{% with a="' + "&" * 4000 + '" %}{{ a|urlencode }}{% endwith %}'
    with pytest.raises(TemplateProblem, match=r"\|urlencode made a value longer than 10,000 characters"):
        template_check(escapes)


def test_it_bounds_the_output(settings):
    settings.MESSAGE_MAX_BYTES = 1000
    with pytest.raises(TemplateProblem, match="The message is longer than 1,000 bytes"):
        template_check("{% for item in items %}" + "x" * 600 + "{% endfor %}")
    template_check("x" * 1000)


def test_it_bounds_the_render_time(settings):
    # given a render deadline already past at the first loop or filter
    settings.MESSAGE_RENDER_MAX_MS = 0
    with pytest.raises(TemplateProblem, match="took longer than 0 ms to render"):
        template_check("{% for item in items %}{{ item.title }}{% endfor %}")
    with pytest.raises(TemplateProblem, match="took longer than 0 ms"):
        MessageRenderer("{{ customer.name|upper }}", "body").render(sample_context())


def test_the_allowed_tags_and_filters_still_render():
    source = (
        "{% if items|length > 1 %}{% for item in items|slice:':2' %}{{ forloop.counter }}."
        "{{ item.title|upper|truncatechars:6 }} {{ item.price|floatformat:2 }}{% empty %}none{% endfor %}{% endif %}"
        "{% with n=items|length %} {{ n }} item{{ n|pluralize }}{% endwith %}"
        " {{ promotion.expires|date:'j F Y' }} {% firstof customer.nickname|default:'' customer.first_name %}"
    )
    _subject, html, _text = MessageRenderer("s", source).render(sample_context())
    assert html == "1.SAMPL… 9.992.SECON… 9.99 2 items 31 January 2030 Alex"
