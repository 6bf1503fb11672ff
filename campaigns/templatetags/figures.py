"""How the dashboard writes figures: rates as percentages, differences of rates in percentage points, money."""

from decimal import Decimal, InvalidOperation

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


def _number(value):
    try:
        return float(Decimal(str(value)))
    except (InvalidOperation, TypeError, ValueError):
        return None


@register.filter
def percent(value, digits=1):
    """0.3012 -> "30.1%"; "–" for no value."""
    number = _number(value)
    return "–" if number is None else f"{number * 100:.{int(digits)}f}%"


@register.filter
def points(value, digits=1):
    """A difference of two rates, 0.2 -> "+20.0 pts" (percentage points); "–" for no value."""
    number = _number(value)
    return "–" if number is None else f"{number * 100:+.{int(digits)}f} pts"


@register.filter
def in_points(value, digits=1):
    """A figure already in percentage points, 1.59 -> "+1.6 pts", as `points` writes rates; "–" for no value."""
    number = _number(value)
    return "–" if number is None else f"{number:+.{int(digits)}f} pts"


@register.filter
def money(value):
    """1234.5 -> "1,234.50" (the shop's currency is not stored); "–" for no value."""
    number = _number(value)
    return "–" if number is None else intcomma(f"{number:.2f}")


@register.filter
def verdict_class(difference):
    """The CSS class of a verdict: a significant gain, a significant loss (never in the success colour), or open."""
    if not difference.significant:
        return "verdict-open"
    return "verdict-negative" if difference.estimate < 0 else "verdict-significant"
