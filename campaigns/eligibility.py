"""Who may receive a batch's message, and why not: the one place for it.

A customer of the audience is left out for the first of these that holds (Recipient.Reason):

1. contactability, the customer's own (shop.models.CONTACT_EXCLUSIONS): no consent, unsubscribed,
   suppressed, no e-mail address;
2. the frequency cap: frequency_cap_messages messages of any campaign in the last frequency_cap_days days;
3. the global holdout: GLOBAL_HOLDOUT_PERCENT of all customers, drawn by GLOBAL_HOLDOUT_SEED, the same in
   every batch;
4. uplift targeting: outside the target_percent with the highest predicted uplift;
5. the batch's holdout: holdout_percent drawn by the batch's seed among those still in, so that the holdout
   and the treated are comparable. A holdout customer keeps the promotion they would have got, never sent.

Generation asks `Eligibility(batch).reasons(customers)` chunk by chunk, reading the batch's frozen settings;
the sender's last look before each message asks `send_exclusion(customer)` (contactability only: the rest
was decided when the batch was generated and approved).
"""

import hashlib
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from campaigns.audiences import audience_query
from campaigns.models import Batch, Recipient
from shop.models import Customer

Reason = Recipient.Reason
# Batches whose messages count towards the frequency cap: on their way, or gone.
COMMITTED = [Batch.Status.APPROVED, Batch.Status.SENDING, Batch.Status.PAUSED, Batch.Status.SENT]


def hashed_draw(seed, customer_id):
    """A uniform number in [0, 1) per (seed, customer): reproducible, independent of chunking and order."""
    digest = hashlib.blake2b(f"{seed}:{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_global_holdout(customer_id):
    share = settings.GLOBAL_HOLDOUT_PERCENT / 100
    return share > 0 and hashed_draw(settings.GLOBAL_HOLDOUT_SEED, customer_id) < share


def send_exclusion(customer):
    """Why a queued message may not go to this customer now (its text for the message's send error), or ''."""
    reason = customer.contact_exclusion()
    return Reason(reason).label.lower() if reason else ""


class Eligibility:
    """The exclusions of one batch, from its frozen settings."""

    def __init__(self, batch):
        self.batch = batch
        self.settings = batch.settings
        self._kept = None

    def reasons(self, customers):
        """{customer id: the Recipient.Reason that leaves them out, or ''} for loaded Customer rows."""
        capped = self._capped([c.id for c in customers])
        out = {}
        for customer in customers:
            reason = customer.contact_exclusion() or (Reason.FREQUENCY_CAP if customer.id in capped else "")
            out[customer.id] = reason or self.targeting_exclusion(customer.id) or self._holdout(customer.id)
        return out

    def _holdout(self, customer_id):
        return Reason.HOLDOUT if hashed_draw(self.batch.seed, customer_id) < self.settings.holdout_share else ""

    def targeting_exclusion(self, customer_id):
        """The global holdout, then uplift targeting: a Recipient.Reason or ''."""
        if in_global_holdout(customer_id):
            return Reason.GLOBAL_HOLDOUT
        if self.settings.targeting == "uplift" and customer_id not in self.kept():
            return Reason.LOW_UPLIFT
        return ""

    def kept(self):
        """The audience's top target_percent by predicted uplift, scored once per batch (ties: lower id)."""
        from campaigns.services.uplift_targeting import uplift_predict

        if self._kept is None:
            ids = list(audience_query(self.settings.audience_rules).order_by("id").values_list("id", flat=True))
            uplift = uplift_predict(ids) if ids else np.array([])
            keep = int(np.ceil(len(ids) * self.settings.target_share))
            self._kept = {ids[n] for n in np.argsort(-uplift, kind="stable")[:keep]}
        return self._kept

    def _capped(self, customer_ids):
        """Customers who already had frequency_cap_messages messages in the last frequency_cap_days days.

        Counted per customer (a subquery on the customer's own rows, through the customer's index): a query
        over the chunk's customers as a whole was planned, on a recipients table whose statistics were not
        yet taken, as a scan of every recipient row of every batch (this one's included) for each chunk, 0.1 s
        a chunk of 500 after one batch of 10,000 and growing with each."""
        since = timezone.now() - timedelta(days=self.settings.frequency_cap_days)
        counted = (
            Recipient.objects.filter(customer_id=OuterRef("pk"), outcome=Recipient.Outcome.RECIPIENT)
            # messages of batches on their way, and those that went out before their batch was cancelled
            .filter(Q(batch__status__in=COMMITTED) | Q(send_status=Recipient.SendStatus.SENT))
            .exclude(batch=self.batch)
            .exclude(send_status=Recipient.SendStatus.FAILED)
            .filter(Q(sent_at__gte=since) | Q(sent_at__isnull=True, batch__decided_at__gte=since))
            .values("customer_id")
            .annotate(n=Count("id"))
            .values("n")
        )
        capped = (
            Customer.objects.filter(id__in=customer_ids)
            .order_by()
            .annotate(n=Subquery(counted))
            .filter(n__gte=self.settings.frequency_cap_messages)
        )
        return set(capped.values_list("id", flat=True))
