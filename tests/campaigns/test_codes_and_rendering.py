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
        ("{% include 'admin/base.html' %}", "TemplateDoesNotExist"),
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
