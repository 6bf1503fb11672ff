"""The template editor's live preview: a campaign's templates rendered for a sample customer, before saving.

The sample is real where the shop has it: the n-th contactable customer, the first promotion chosen on the
form and a few of its offerable items; links lead to /test-link/, which changes nothing. Where the shop has
none, the fixed sample the save-time check uses (rendering.sample_context) fills in.
"""

from django.conf import settings
from django.urls import reverse

from campaigns.models import Promotion
from campaigns.rendering import (
    MessageRenderer,
    TemplateProblem,
    message_context,
    promotion_fields,
    sample_context,
    template_check,
)
from shop.models import Customer

PREVIEW_ITEMS = 3


def template_preview(*, subject_template, body_template, promotion_ids=(), sample=0, n_items=PREVIEW_ITEMS):
    """{"customer", "subject", "html", "text"} for the sample-th contactable customer; TemplateProblem when the
    templates do not render."""
    for name, source in (("Subject", subject_template), ("Body", body_template)):
        try:
            template_check(source)
        except TemplateProblem as problem:
            raise TemplateProblem(f"{name}: {problem}") from problem
    renderer = MessageRenderer(subject_template, body_template)
    context = sample_context()
    customers = Customer.objects.contactable().order_by("id")
    total = customers.count()
    customer = customers[sample % total] if total else None
    promotion = Promotion.objects.filter(id__in=promotion_ids, historical=False).order_by("id").first()
    if customer is not None and promotion is not None:
        context = message_context(
            customer=customer,
            promotion=promotion_fields(promotion),
            code=promotion.shared_code or "POOL-CODE",
            items=_items(promotion, n_items) or context["items"],
            unsubscribe_url=_inert_link(),
        )
    subject, html, text = renderer.render(context)
    label = f"{customer.name or customer.external_id} ({customer.email})" if customer else "a made-up sample customer"
    return {"customer": label, "customers": total, "subject": subject, "html": html, "text": text}


def _inert_link():
    return settings.SITE_URL.rstrip("/") + reverse("campaigns:test_link")


def _items(promotion, n_items):
    items = promotion.eligible_items().filter(active=True, in_stock=True, is_stub=False).order_by("id")[:n_items]
    return [
        {
            "title": item.title or item.external_id,
            "price": item.price if item.price is not None else "",
            "image_url": item.image_url,
            "url": _inert_link(),
            "not_interested_url": _inert_link(),
            "because": "",
        }
        for item in items
    ]
