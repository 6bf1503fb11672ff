"""Taking customers off the mailing list: unsubscribing (their choice) and suppressing (their address fails)."""

from django.db.models import Q
from django.utils import timezone

from shop.models import Customer


def customer_unsubscribe(*, customer: Customer, source: str):
    """Unsubscribe from all marketing; takes effect for every later message, a batch in flight included."""
    Customer.objects.filter(Q(id=customer.id) & Q(unsubscribed_at__isnull=True)).update(
        unsubscribed_at=timezone.now(), updated_at=timezone.now()
    )
    customer.refresh_from_db(fields=["unsubscribed_at"])
    return customer


def customer_suppress(*, customer_id: int, reason: str):
    """Never mail this customer again (a hard bounce or a complaint); the first reason given is kept."""
    Customer.objects.filter(id=customer_id, suppressed=False).update(
        suppressed=True, suppressed_reason=reason[:200], updated_at=timezone.now()
    )
