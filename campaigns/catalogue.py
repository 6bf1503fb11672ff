"""Catalogue look-ups for choosing a promotion's items: category paths and brands to pick from, and how many
items a choice matches (the promotion form's pickers and its live count)."""

from collections import Counter

from django.db.models import Count

from campaigns.models.promotions import eligible_items
from shop.models import Item

PICKER_LIMIT = 20


def category_options(*, query="", limit=PICKER_LIMIT):
    """Category path prefixes ("A", "A > B", ...) containing `query`, with their number of items: the ones
    starting with it first, then the biggest. A prefix covers every path below it, as a promotion reads it."""
    counts = Counter()
    paths = Item.objects.filter(is_stub=False).exclude(category_path="").values_list("category_path")
    for path, n in paths.annotate(n=Count("id")).order_by():
        levels = path.split(" > ")
        for depth in range(1, len(levels) + 1):
            counts[" > ".join(levels[:depth])] += n
    wanted = query.strip().lower()
    found = [(prefix, n) for prefix, n in counts.items() if wanted in prefix.lower()]
    found.sort(key=lambda pair: (not pair[0].lower().startswith(wanted), -pair[1], pair[0]))
    return [{"value": prefix, "items": n} for prefix, n in found[:limit]]


def brand_options(*, query="", limit=PICKER_LIMIT):
    """Brands containing `query`, with their number of items, the biggest first."""
    brands = Item.objects.filter(is_stub=False, brand__icontains=query.strip()).exclude(brand="")
    rows = brands.values("brand").annotate(n=Count("id")).order_by("-n", "brand")[:limit]
    return [{"value": row["brand"], "items": row["n"]} for row in rows]


def items_matching(**rule):
    """How many items a promotion's item rule (campaigns.models.promotions.eligible_items) matches, and how
    many of them can be offered now (active and in stock)."""
    matched = eligible_items(**rule).filter(is_stub=False)
    return {"items": matched.count(), "offerable": matched.filter(active=True, in_stock=True).count()}
