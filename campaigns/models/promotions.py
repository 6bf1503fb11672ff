"""Promotions: what is offered, on which items, for how long, within which budget, with which codes."""

from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models.versioning import Versioned
from shop.models import ExternalCampaign, Item


class PromotionQuerySet(models.QuerySet):
    def running(self, now=None):
        """Promotions whose window contains `now` (budget and codes are checked per promotion)."""
        now = now or timezone.now()
        return self.filter(historical=False, starts_at__lte=now, ends_at__gt=now)


class Promotion(Versioned):
    class Kind(models.TextChoices):
        PERCENT_OFF = "percent_off", "percent off"
        AMOUNT_OFF = "amount_off", "amount off"
        SPEND_SAVE = "spend_save", "spend X, save Y"
        FREE_SHIPPING = "free_shipping", "free shipping"
        BUY_X_GET_Y = "buy_x_get_y", "buy X, get Y free"

    class CodeMode(models.TextChoices):
        SHARED = "shared", "one shared code"
        POOL = "pool", "a unique code per recipient"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, help_text="Shown to customers as {{ promotion.description }}.")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERCENT_OFF)
    value = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0"),
        help_text="Percent for percent off; the amount saved for amount off and spend X save Y.",
    )
    min_spend = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="X of 'spend X, save Y'."
    )
    buy_quantity = models.PositiveSmallIntegerField(null=True, blank=True, help_text="X of 'buy X, get Y'.")
    get_quantity = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Y of 'buy X, get Y'.")
    shipping_cost = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("0"),
        help_text="What free shipping costs the shop per order (its discount cost).",
    )

    # Eligibility: no item, category or brand named means every item; exclusions always win.
    items = models.ManyToManyField(Item, blank=True, related_name="promotions")
    categories = models.JSONField(
        default=list, blank=True, help_text="Category path prefixes, e.g. 'GROCERY > COOKIES/CONES'."
    )
    brands = models.JSONField(default=list, blank=True)
    excluded_items = models.ManyToManyField(Item, blank=True, related_name="excluded_from_promotions")
    excluded_categories = models.JSONField(default=list, blank=True)
    excluded_brands = models.JSONField(default=list, blank=True)

    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    max_redemptions = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: no limit.")
    max_discount_total = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, help_text="Empty: no limit."
    )
    # Counted by attribution as redemptions arrive (issue 6); read here for the budget check.
    redemptions_used = models.PositiveIntegerField(default=0)
    discount_used = models.DecimalField(max_digits=12, decimal_places=2, default=Decimal("0"))

    code_mode = models.CharField(max_length=8, choices=CodeMode.choices, default=CodeMode.SHARED)
    shared_code = models.CharField(max_length=64, blank=True)

    expected_lift = models.DecimalField(
        max_digits=5,
        decimal_places=3,
        default=Decimal("0.100"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("10"))],
        help_text="How much likelier a customer buys the eligible items with the offer than without (0.1 = 10% "
        "more), assumed until the campaign's earlier batches measure it against their holdouts.",
    )
    historical = models.BooleanField(default=False, help_text="Imported history; never offered again.")
    external_campaign = models.ForeignKey(
        ExternalCampaign, null=True, blank=True, on_delete=models.SET_NULL, related_name="promotions"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = PromotionQuerySet.as_manager()

    class Meta:
        ordering = ["-starts_at", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.ends_at and self.starts_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The promotion must end after it starts."
        if self.kind == self.Kind.PERCENT_OFF and not (0 < self.value <= 100):
            errors["value"] = "A percent off is between 0 and 100."
        if self.kind in (self.Kind.AMOUNT_OFF, self.Kind.SPEND_SAVE) and self.value <= 0:
            errors["value"] = "The amount saved must be positive."
        if self.kind == self.Kind.SPEND_SAVE and not self.min_spend:
            errors["min_spend"] = "Spend X, save Y needs X (the minimum spend)."
        if self.kind == self.Kind.SPEND_SAVE and self.min_spend and self.value >= self.min_spend:
            errors["value"] = "The saving must be less than the minimum spend."
        if self.kind == self.Kind.BUY_X_GET_Y and not (self.buy_quantity and self.get_quantity):
            errors["buy_quantity"] = "Buy X, get Y needs both X and Y."
        if self.code_mode == self.CodeMode.SHARED and not self.shared_code.strip():
            errors["shared_code"] = "A shared-code promotion needs its code."
        if errors:
            raise ValidationError(errors)

    @property
    def discount_text(self):
        """The offer in words, for messages and pages."""
        if self.historical:
            return "as each coupon said (imported history)"
        value = f"{self.value.normalize():f}"  # 10.00 -> "10", 12.50 -> "12.5"
        return {
            self.Kind.PERCENT_OFF: f"{value}% off",
            self.Kind.AMOUNT_OFF: f"{value} off",
            self.Kind.SPEND_SAVE: f"spend {self.min_spend}, save {value}",
            self.Kind.FREE_SHIPPING: "free shipping",
            self.Kind.BUY_X_GET_Y: f"buy {self.buy_quantity}, get {self.get_quantity} free",
        }[self.kind]

    def eligible_items(self):
        """Items the promotion applies to (active and in stock or not: the caller filters)."""
        return eligible_items(
            items=self.items.values("id") if self.pk and self.items.exists() else None,
            categories=self.categories,
            brands=self.brands,
            excluded_items=self.excluded_items.values("id") if self.pk else None,
            excluded_categories=self.excluded_categories,
            excluded_brands=self.excluded_brands,
        )

    def codes_available(self):
        return self.codes.filter(recipient__isnull=True).count()

    def unusable_reason(self, now=None):
        """Why this promotion cannot go into a new batch, or None when it can."""
        now = now or timezone.now()
        if self.historical:
            return "it is a past promotion imported from the shop's history"
        if self.ends_at <= now:
            return f"it ended on {self.ends_at:%Y-%m-%d %H:%M} UTC"
        if self.max_redemptions is not None and self.redemptions_used >= self.max_redemptions:
            return f"its budget of {self.max_redemptions} redemptions is used up"
        if self.max_discount_total is not None and self.discount_used >= self.max_discount_total:
            return f"its discount budget of {self.max_discount_total} is used up"
        if self.code_mode == self.CodeMode.POOL and not self.codes_available():
            return "its code pool is empty: generate or upload more codes"
        return None

    def discount_cost(self, price):
        """What one redemption costs the shop on an item of this price (the expected-value formula's input)."""
        price = Decimal(price or 0)
        if self.kind == self.Kind.PERCENT_OFF:
            return price * self.value / 100
        if self.kind == self.Kind.AMOUNT_OFF:
            return min(self.value, price)
        if self.kind == self.Kind.SPEND_SAVE:
            return self.value
        if self.kind == self.Kind.FREE_SHIPPING:
            return self.shipping_cost
        # buy X get Y: Y free units for every X bought; the customer takes X + Y units.
        return price * (self.get_quantity or 0)

    def units_per_redemption(self):
        if self.kind == self.Kind.BUY_X_GET_Y:
            return (self.buy_quantity or 0) + (self.get_quantity or 0)
        return 1


class PromotionCode(models.Model):
    """One code of a promotion's pool. A code goes to at most one recipient, ever (a one-to-one)."""

    class Source(models.TextChoices):
        GENERATED = "generated"
        UPLOADED = "uploaded"

    promotion = models.ForeignKey(Promotion, on_delete=models.CASCADE, related_name="codes")
    code = models.CharField(max_length=64, unique=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.GENERATED)
    recipient = models.OneToOneField(
        "campaigns.Recipient", null=True, blank=True, on_delete=models.PROTECT, related_name="pool_code"
    )
    assigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["promotion", "recipient"], name="promotioncode_free")]

    def __str__(self):
        return self.code


def eligible_items(
    *, items=None, categories=(), brands=(), excluded_items=None, excluded_categories=(), excluded_brands=()
):
    """The rule of a promotion's items, also for a form not saved yet: the items named, the items under the
    category path prefixes and of the brands (nothing named: every item), less every exclusion, which wins.
    `items` and `excluded_items` are ids (a list or a values("id") query)."""
    included = Q()
    if items is not None and (not isinstance(items, list | tuple) or items):
        included |= Q(id__in=items)
    for prefix in categories:
        included |= Q(category_path__startswith=prefix)
    if brands:
        included |= Q(brand__in=brands)
    queryset = Item.objects.filter(included) if included else Item.objects.all()
    excluded = Q()
    if excluded_items is not None and (not isinstance(excluded_items, list | tuple) or excluded_items):
        excluded |= Q(id__in=excluded_items)
    for prefix in excluded_categories:
        excluded |= Q(category_path__startswith=prefix)
    if excluded_brands:
        excluded |= Q(brand__in=excluded_brands)
    return queryset.exclude(excluded) if excluded else queryset
