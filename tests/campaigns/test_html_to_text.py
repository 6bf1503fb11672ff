"""The plain-text part of a message (rendering.html_to_text): what Django's strip_tags gave, faster."""

import random
import re
from html import unescape

import pytest
from django.utils.html import strip_tags

from campaigns.models.campaigns import DEFAULT_BODY
from campaigns.rendering import MessageRenderer, html_to_text, sample_context


def reference(html):
    """html_to_text as it was, with Django's strip_tags (an HTMLParser)."""
    text = re.sub(r"</p>|</h\d>", "\n\n", html, flags=re.IGNORECASE)
    text = re.sub(r"<br\s*/?>|</tr>", "\n", text, flags=re.IGNORECASE)
    text = unescape(strip_tags(text))
    text = "\n".join(line.strip() for line in re.sub(r"[ \t\xa0]+", " ", text).splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


FRAGMENTS = [
    "Hello", " ", "\n", "Tom &amp; Jerry", "5 &lt; 6", "caf\u00e9", "it's", 'say "hi"', "a < b", "x > y", "&nbsp;",
    "&#39;", "&#x27;", "&euro;", "<p>", "</p>", "<br>", "<br/>", "<BR />", "<tr>", "</tr>", "<td>", "</td>",
    "<table>", "</table>", "<h2>", "</h2>", '<a href="https://shop.example.test/r/abc/?x=1&amp;y=2">', "</a>",
    "<img src='https://shop.example.test/i.jpg' alt=\"a > b\" width=\"80\">", '<span title="it\'s">', "</span>",
    "<!-- a comment with <b>tags</b> -->", "<strong>", "</strong>", "<STRONG>", "</STRONG>", '<div class="x">',
    "</div>", "<ul>", "<li>", "</li>", "</ul>", "\t", "\xa0", "<hr/>", "<em>", "</em>",
]  # fmt: skip


@pytest.mark.parametrize("seed", range(300))
def test_random_documents_give_what_strip_tags_gave(seed):
    rng = random.Random(seed)
    html = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 60)))
    assert html_to_text(html) == reference(html), html


@pytest.mark.parametrize(
    "title",
    ["Plain", "Salt & pepper", "<script>alert(1)</script>", 'The "best" <b>cheese</b>', "5 > 4 < 6", "Cr\u00e8me"],
)
def test_the_default_message_gives_what_strip_tags_gave(title):
    context = sample_context()
    context["items"][0]["title"] = title
    _subject, html, text = MessageRenderer("Hi", DEFAULT_BODY).render(context)
    assert text == reference(html)
    assert unescape(title) in text  # what the customer reads, unescaped, tags of their own data included


def test_it_keeps_lines_and_drops_the_markup():
    html = '<p>Hi <b>Alex</b>,</p><table><tr><td><a href="u">Milk &amp; eggs</a><br>2.99</td></tr></table>'
    assert html_to_text(html) == "Hi Alex,\n\nMilk & eggs\n2.99"
