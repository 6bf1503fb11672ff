"""Push batches: one generated push of a campaign, a row per customer of its audience, and an audit log."""

from django.conf import settings
from django.db import models
from django.utils.functional import cached_property

from campaigns.batch_settings import BatchSettings
from campaigns.models.campaigns import Campaign
from campaigns.models.promotions import Promotion
from promo_site.jobs import Job
from shop.models import Customer


class Batch(Job):
    """One push of a campaign to its audience.

      State machine: TRANSITIONS below is the whole of it (action -> from, to), and
      campaigns/services/batches.py `batch_transition` the one service that changes the status (checking
      the table and writing the action's BatchEvent, in one transaction with a row lock):

    (requeued) generating ─► generated ─► approved ─► sending ◄─► paused
               │            │           │         │  ▲ (restarted)
               ▼            ▼           ▼         ▼  │     │
             failed      rejected     voided      sent     │
          generated, approved, sending and paused ─► cancelled
                                    (voided: the campaign or a promotion changed after approval)
    """

    class Status(models.TextChoices):
        GENERATING = "generating"
        GENERATED = "generated", "In review"
        FAILED = "failed"
        APPROVED = "approved"
        REJECTED = "rejected"
        VOIDED = "voided", "Approval voided"
        SENDING = "sending"
        PAUSED = "paused"
        SENT = "sent"
        CANCELLED = "cancelled"

    # The whole state machine: each action (the BatchEvent it writes) -> the statuses it may start from and
    # the status it leads to. campaigns/services/batches.py `batch_transition` refuses anything else.
    TRANSITIONS = {
        "requeued": ({Status.GENERATING}, Status.GENERATING),  # the sweeper restarts a lost generation
        "generated": ({Status.GENERATING}, Status.GENERATED),
        "failed": ({Status.GENERATING}, Status.FAILED),
        "approved": ({Status.GENERATED}, Status.APPROVED),
        "rejected": ({Status.GENERATED}, Status.REJECTED),
        "voided": ({Status.APPROVED}, Status.VOIDED),
        "sending": ({Status.APPROVED}, Status.SENDING),
        "paused": ({Status.SENDING}, Status.PAUSED),
        "resumed": ({Status.PAUSED}, Status.SENDING),
        "restarted": ({Status.SENDING}, Status.SENDING),  # the sweeper replaces a lost sender
        "sent": ({Status.SENDING}, Status.SENT),
        "cancelled": ({Status.GENERATED, Status.APPROVED, Status.SENDING, Status.PAUSED}, Status.CANCELLED),
    }

    class Rendering(models.TextChoices):
        # campaigns/messages.py: messages are rendered when shown or sent, from what the batch fixed at
        # generation; batches generated before that kept every body (Recipient.subject, body_html).
        STORED = "stored", "bodies stored at generation"
        ON_DEMAND = "on_demand", "rendered on demand from the batch's snapshot"

    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, related_name="batches")
    number = models.PositiveIntegerField(help_text="1, 2, ... within the campaign")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.GENERATING, db_index=True)
    model_version = models.ForeignKey(
        "recommender.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="batches"
    )
    # The version whose response model gave p(response); null: it had none, and generation used the proxy
    # (the campaign's base rate x the recommender's mass on the eligible items).
    response_model = models.ForeignKey(
        "recommender.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    settings_snapshot = models.JSONField(
        default=dict, blank=True, help_text="The campaign and promotions as they were when the batch was generated."
    )
    rendering = models.CharField(max_length=16, choices=Rendering.choices, default=Rendering.ON_DEMAND)
    message_snapshot = models.JSONField(
        default=dict, blank=True, help_text="What messages show of the promotions, as at generation (messages.py)."
    )
    seed = models.BigIntegerField(help_text="Seeds the holdout draw, so it can be re-checked.")
    # Generation is a long job (promo_site/jobs.py): started_at, heartbeat_at, worker come from Job.
    progress = models.JSONField(default=dict, blank=True, help_text="done, total, phase")
    summary = models.JSONField(default=dict, blank=True, help_text="counts, distributions and expectations")
    render_failures = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    generated_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_comment = models.TextField(blank=True)
    send_started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Raised by every start, resume and sweeper restart of sending: a send task carries the number it was
    # queued with and stops when it is no longer current, so only the senders of the latest run claim.
    send_run = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        constraints = [models.UniqueConstraint(fields=["campaign", "number"], name="batch_number_unique")]
        permissions = [("approve_batch", "Can approve or reject a push batch (never one of their own)")]

    def __str__(self):
        return f"{self.campaign} #{self.number}"

    @cached_property
    def settings(self):
        """The frozen BatchSettings this batch was requested with (what generation, sending and review read)."""
        return BatchSettings.from_json(self.settings_snapshot)


class Recipient(models.Model):
    """One customer of a batch's audience: a recipient with their offer, or excluded with the reason."""

    class Outcome(models.TextChoices):
        RECIPIENT = "recipient"
        EXCLUDED = "excluded"

    class Reason(models.TextChoices):
        NO_CONSENT = "no_consent", "no marketing consent"
        UNSUBSCRIBED = "unsubscribed"
        SUPPRESSED = "suppressed", "suppressed (bounce or complaint)"
        NO_EMAIL = "no_email", "no e-mail address"
        FREQUENCY_CAP = "frequency_cap", "frequency cap"
        HOLDOUT = "holdout"
        GLOBAL_HOLDOUT = "global_holdout", "global holdout (kept out of every campaign)"
        LOW_UPLIFT = "low_uplift", "low predicted uplift"
        NO_ELIGIBLE_ITEM = "no_eligible_item", "no eligible item"
        POOL_EXHAUSTED = "pool_exhausted", "code pool exhausted"
        NOT_PAYING = "not_paying", "no promotion pays (expected incremental profit not above 0)"

    class SendStatus(models.TextChoices):
        # issue 5's message state machine: queued -> claimed -> sent | failed
        QUEUED = "queued"
        CLAIMED = "claimed"
        SENT = "sent"
        FAILED = "failed"

    class Delivery(models.TextChoices):
        # issue 6's delivery state, from the provider's webhooks; it only moves to the right, so a
        # duplicate or late webhook never moves it back: (none) -> deferred -> delivered -> bounced -> complained
        DEFERRED = "deferred"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        COMPLAINED = "complained"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="recipients")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True)
    promotion = models.ForeignKey(Promotion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    code = models.CharField(max_length=64, blank=True)
    items = models.JSONField(
        default=list, blank=True, help_text="[{item_id, probability, because_item_id, kind (buy_again or new), reason}]"
    )
    p_response = models.FloatField(null=True, blank=True, help_text="p1: the response with the offer")
    p_baseline = models.FloatField(null=True, blank=True, help_text="p0: the response without it")
    expected_value = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    expected_revenue = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    expected_discount = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    expected_margin = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    alternatives = models.JSONField(default=list, blank=True, help_text="every candidate promotion's value")
    # Stored only by batches generated before messages were rendered on demand (Batch.Rendering.STORED).
    subject = models.CharField(max_length=500, blank=True)
    body_html = models.TextField(blank=True)
    render_error = models.TextField(blank=True)
    # No index of its own: every row is written twice per send (claim, result), each write into every index,
    # and the queries by send_status go through the indexes below (the claim's, the sweeper's).
    send_status = models.CharField(max_length=16, choices=SendStatus.choices, blank=True)
    send_after = models.DateTimeField(null=True, blank=True, help_text="quiet hours in the customer's time zone")
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_message_id = models.CharField(max_length=128, blank=True)
    send_error = models.TextField(blank=True)
    delivery_status = models.CharField(max_length=16, choices=Delivery.choices, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="when the provider reported delivery")

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["batch", "customer"], name="recipient_once_per_batch")]
        indexes = [
            models.Index(fields=["batch", "outcome", "reason"], name="recipient_batch_outcome"),
            models.Index(fields=["customer", "sent_at"], name="recipient_customer_sent"),
            # A webhook without our metadata finds its message by the provider's id (sent messages only).
            models.Index(
                fields=["provider_message_id"],
                name="recipient_provider_message",
                condition=~models.Q(provider_message_id=""),
            ),
            # the sender's claim: a batch's queued messages that are due, oldest first, then by id; with the id
            # in the index the claim's scan stops after its chunk instead of sorting every due row of the batch
            models.Index(fields=["batch", "send_status", "send_after", "id"], name="recipient_send_claim"),
            # the sweeper's: messages in flight, oldest claim first (only claimed rows are in it)
            models.Index(
                fields=["claimed_at", "id"], name="recipient_in_flight", condition=models.Q(send_status="claimed")
            ),
        ]

    @property
    def p_response_percent(self):
        """p(response) as the review page shows it: a percentage with one decimal ("12.3%")."""
        return "" if self.p_response is None else f"{self.p_response * 100:.1f}%"

    def __str__(self):
        return f"{self.customer} in {self.batch}"


class BatchEvent(models.Model):
    """The audit log of a batch: every transition, who did it, when, and their comment."""

    class Action(models.TextChoices):
        REQUESTED = "requested"
        REQUEUED = "requeued", "generation requeued (its worker was lost)"
        GENERATED = "generated"
        FAILED = "failed"
        APPROVED = "approved"
        REJECTED = "rejected"
        VOIDED = "voided", "Approval voided"
        TEST_SENT = "test_sent", "test send"
        SENDING = "sending"
        PAUSED = "paused"
        RESUMED = "resumed"
        RESTARTED = "restarted", "sender restarted"
        SENT = "sent"
        CANCELLED = "cancelled"
        IMPORTED = "imported", "imported as sent"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="events")
    action = models.CharField(max_length=16, choices=Action.choices)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField(auto_now_add=True)
    comment = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.batch}: {self.action}"


class GenerationChunk(models.Model):
    """One slice of a batch's audience (customer ids first..last), generated by whichever worker claims it.

    A batch's generation is planned as chunks (campaigns/services/generation_chunks.py); each is claimed with a
    conditional UPDATE (a token in `worker`), reports after every few hundred customers (`done`, the time in
    `heartbeat_at`) and is taken over when its worker has been silent for GENERATION_TAKEOVER_SECONDS.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    first_customer_id = models.BigIntegerField()
    last_customer_id = models.BigIntegerField()
    customers = models.PositiveIntegerField(help_text="audience members in the range when it was planned")
    done = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    worker = models.CharField(max_length=32, blank=True, editable=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "number"]
        constraints = [models.UniqueConstraint(fields=["batch", "number"], name="generation_chunk_unique")]

    def __str__(self):
        return f"{self.batch} chunk {self.number}"
