"""What happened after sending: message events (delivery, opens, clicks, ...) and attributed conversions."""

from django.db import models

from campaigns.models.batches import Batch, Recipient
from shop.models import Customer, Event, Item


class MessageEventQuerySet(models.QuerySet):
    def human(self):
        """Events not flagged as bots or link scanners: what the stats count (campaigns/services/bots.py)."""
        return self.filter(is_bot=False)


class MessageEvent(models.Model):
    """One event of a sent message, from the provider's tracking webhooks or from our own links.

    Stored idempotently on (source, event_id): a webhook delivered twice counts once.
    Events flagged as bots (link scanners, known crawler user agents) are kept but left out of the stats.
    """

    class Kind(models.TextChoices):
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        DEFERRED = "deferred"
        COMPLAINED = "complained"
        OPENED = "opened"
        CLICKED = "clicked"
        UNSUBSCRIBED = "unsubscribed"
        NOT_INTERESTED = "not_interested", "not interested"

    class Source(models.TextChoices):
        PROVIDER = "provider"
        OURS = "ours"

    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="message_events")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    event_id = models.CharField(max_length=128, help_text="The provider's event id, or our own for our links.")
    occurred_at = models.DateTimeField()
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_bot = models.BooleanField(default=False)
    bot_reason = models.CharField(max_length=200, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="bounce type, provider's description, url, ...")
    received_at = models.DateTimeField(auto_now_add=True)

    objects = MessageEventQuerySet.as_manager()

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="messageevent_once")]
        indexes = [
            models.Index(fields=["recipient", "kind"], name="messageevent_recipient_kind"),
            models.Index(fields=["occurred_at"], name="messageevent_time"),
        ]

    def __str__(self):
        return f"{self.kind} of message {self.recipient_id}"


class Conversion(models.Model):
    """A shop purchase or coupon redemption attributed to the message that earned it (one per shop event)."""

    class Rule(models.TextChoices):
        CODE = "code", "the message's coupon code"
        CLICK = "click", "last click in the window"
        DELIVERY = "delivery", "last delivered message in the window"

    event = models.OneToOneField(Event, on_delete=models.CASCADE, db_constraint=False, related_name="conversion")
    recipient = models.ForeignKey(Recipient, on_delete=models.CASCADE, related_name="conversions")
    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="conversions")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    rule = models.CharField(max_length=16, choices=Rule.choices)
    occurred_at = models.DateTimeField()
    revenue = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    discount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    margin = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    attributed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [models.Index(fields=["batch", "occurred_at"], name="conversion_batch_time")]

    def __str__(self):
        return f"conversion of {self.customer_id} by {self.rule}"
