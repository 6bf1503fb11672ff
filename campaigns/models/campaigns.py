"""Campaigns: an audience, candidate promotions, a message, and the rules on how and when it may go out."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from campaigns.models.audiences import Audience
from campaigns.models.promotions import Promotion
from campaigns.models.versioning import Versioned
from recommender.models import ItemChoice

DEFAULT_SUBJECT = "{{ customer.first_name|default:'Hello' }}, {{ promotion.discount_text }} picked for you"
DEFAULT_BODY = """<p>Hi {{ customer.first_name|default:"there" }},</p>
<p>{{ promotion.name }}: <strong>{{ promotion.discount_text }}</strong>
with code <strong>{{ promotion.code }}</strong>, until {{ promotion.expires|date:"j F Y" }}.</p>
<table>
{% for item in items %}
  <tr>
    <td>{% if item.image_url %}<img src="{{ item.image_url }}" alt="" width="80">{% endif %}</td>
    <td><a href="{{ item.url }}">{{ item.title }}</a><br>{{ item.price }}</td>
  </tr>
{% endfor %}
</table>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
"""


class Campaign(Versioned):
    class Channel(models.TextChoices):
        EMAIL = "email", "e-mail"

    class Targeting(models.TextChoices):
        RESPONSE = "response", "everyone in the audience (best promotion by expected value)"
        UPLIFT = "uplift", "the customers with the highest predicted uplift"

    class Response(models.TextChoices):
        # What the offer is for: in grocery nearly everyone buys something within two weeks, so "any
        # purchase" cannot show a promotion's effect. A customer's eligible items are those of the promotion
        # they were given (or, held out, would have been given).
        ELIGIBLE_PURCHASE = "eligible_purchase", "a purchase of the promotion's eligible items"
        PURCHASE = "purchase", "a purchase (of anything)"
        VISIT = "visit", "a visit (any viewed item)"

    name = models.CharField(max_length=200, unique=True)
    audience = models.ForeignKey(Audience, on_delete=models.PROTECT, related_name="campaigns")
    promotions = models.ManyToManyField(
        Promotion, related_name="campaigns", help_text="Candidates; each customer gets the best one for them."
    )
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    subject_template = models.CharField(max_length=300, default=DEFAULT_SUBJECT)
    body_template = models.TextField(default=DEFAULT_BODY, help_text="HTML; the fields are listed below the form.")
    items_per_message = models.PositiveSmallIntegerField(default=4)
    item_kinds = models.CharField(
        max_length=16,
        choices=ItemChoice.choices,
        default=ItemChoice.BOTH,
        help_text="Which items to recommend: ones the customer bought before (buy again: groceries, "
        "consumables), ones they never bought (new: fashion), or both ranked together.",
    )
    holdout_percent = models.DecimalField(
        max_digits=5, decimal_places=2, default=10, help_text="A random control group, recorded and never sent."
    )
    frequency_cap_messages = models.PositiveSmallIntegerField(
        default=3, help_text="At most this many messages per customer, across all campaigns ..."
    )
    frequency_cap_days = models.PositiveSmallIntegerField(default=7, help_text="... in this many days.")
    quiet_hours_start = models.TimeField(
        null=True, blank=True, help_text="No message between start and end in the customer's own time zone."
    )
    quiet_hours_end = models.TimeField(null=True, blank=True)
    send_at = models.DateTimeField(null=True, blank=True, help_text="Empty: send as soon as the batch is approved.")
    base_response_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=0.05,
        help_text="Share of recipients expected to respond when the offer covers everything they would buy.",
    )
    targeting = models.CharField(max_length=16, choices=Targeting.choices, default=Targeting.RESPONSE)
    target_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=100,
        help_text="With uplift targeting: the share of the audience kept, highest predicted uplift first.",
    )
    only_where_it_pays = models.BooleanField(
        default=False,
        help_text="Leave out the customers for whom no promotion's expected incremental profit is above zero.",
    )
    measured_response = models.CharField(
        max_length=24,
        choices=Response.choices,
        default=Response.ELIGIBLE_PURCHASE,
        help_text="What counts as a response, within the measurement window after the send, when treated and "
        "holdout customers are compared and when the uplift model learns from the batch.",
    )
    seed_emails = models.TextField(
        blank=True, help_text="Internal addresses for test sends, one per line (defaults to TEST_SEND_EMAILS)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def clean(self):
        from campaigns.rendering import TemplateProblem, template_check

        errors = {}
        if not 0 <= self.holdout_percent < 100:
            errors["holdout_percent"] = "The holdout is a percentage from 0 to under 100."
        if not 0 < self.target_percent <= 100:
            errors["target_percent"] = "The share kept is a percentage above 0 and up to 100."
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            errors["quiet_hours_end"] = "Quiet hours need both a start and an end (or neither)."
        if self.items_per_message < 1 or self.items_per_message > 20:
            errors["items_per_message"] = "Between 1 and 20 items per message."
        for field in ("subject_template", "body_template"):
            try:
                template_check(getattr(self, field))
            except TemplateProblem as problem:
                errors[field] = str(problem)
        if errors:
            raise ValidationError(errors)

    def seed_list(self):
        lines = self.seed_emails.splitlines() or settings.TEST_SEND_EMAILS
        return [line.strip() for line in lines if line.strip()]
