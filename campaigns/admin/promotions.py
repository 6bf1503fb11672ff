from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from campaigns import catalogue
from campaigns.admin.common import ActingUserMixin, ListField
from campaigns.models import Promotion, PromotionCode
from campaigns.services.codes import codes_generate, codes_upload

LIST_FIELDS = ["categories", "brands", "excluded_categories", "excluded_brands"]


class PromotionForm(forms.ModelForm):
    categories = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="One category path prefix per line."
    )
    brands = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="One brand per line.")
    excluded_categories = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    excluded_brands = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    class Meta:
        model = Promotion
        exclude = ["redemptions_used", "discount_used", "created_by", "version"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in LIST_FIELDS:
            self.initial[name] = ListField.to_text(getattr(self.instance, name))

    def clean(self):
        data = super().clean()
        for name in LIST_FIELDS:
            data[name] = ListField.to_list(data.get(name))
        return data


class CodeGenerateForm(forms.Form):
    count = forms.IntegerField(min_value=1, max_value=1_000_000, initial=1000)
    prefix = forms.CharField(required=False, max_length=20)


class CodeUploadForm(forms.Form):
    file = forms.FileField(help_text="A text or CSV file: one code per line (an optional header 'code').")


@admin.register(Promotion)
class PromotionAdmin(ActingUserMixin, admin.ModelAdmin):
    form = PromotionForm
    list_display = ["name", "kind", "offer", "starts_at", "ends_at", "codes", "budget", "state"]
    list_filter = ["kind", "code_mode", "historical"]
    search_fields = ["name", "shared_code", "external_campaign__external_id"]
    date_hierarchy = "starts_at"
    autocomplete_fields = ["items", "excluded_items"]
    readonly_fields = ["state", "codes", "budget", "created_by", "version"]
    change_form_template = "admin/campaigns/promotion/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "description", "state"]}),
        (
            "Offer",
            {
                "fields": [
                    "kind",
                    "value",
                    "min_spend",
                    "buy_quantity",
                    "get_quantity",
                    "shipping_cost",
                    "expected_lift",
                ]
            },
        ),
        (
            "Eligible items (nothing named: every item; exclusions always win)",
            {"fields": ["items", "categories", "brands", "excluded_items", "excluded_categories", "excluded_brands"]},
        ),
        (
            "Validity and budget",
            {"fields": ["starts_at", "ends_at", "max_redemptions", "max_discount_total", "budget"]},
        ),
        ("Codes", {"fields": ["code_mode", "shared_code", "codes"]}),
        ("History", {"fields": ["historical", "external_campaign", "created_by", "version"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(n_codes=Count("codes"), n_free=Count("codes", filter=Q(codes__recipient__isnull=True)))
        )

    @admin.display(description="offer")
    def offer(self, obj):
        return obj.discount_text

    @admin.display(description="codes (free / all)")
    def codes(self, obj):
        if obj.code_mode == Promotion.CodeMode.SHARED:
            return f"shared: {obj.shared_code}"
        n_codes = getattr(obj, "n_codes", None)
        if n_codes is None:
            n_codes, n_free = obj.codes.count(), obj.codes_available()
        else:
            n_free = obj.n_free
        return f"{n_free:,} / {n_codes:,}"

    @admin.display(description="budget used")
    def budget(self, obj):
        parts = [
            f"{obj.redemptions_used:,} redemptions" + (f" of {obj.max_redemptions:,}" if obj.max_redemptions else "")
        ]
        parts.append(
            f"{obj.discount_used} discount" + (f" of {obj.max_discount_total}" if obj.max_discount_total else "")
        )
        return ", ".join(parts)

    @admin.display(description="can it go into a new batch?")
    def state(self, obj):
        if not obj.pk:
            return "–"
        reason = obj.unusable_reason()
        if reason:
            return format_html('<span class="promo-unusable" style="color:#ba2121">No: {}.</span>', reason)
        return mark_safe('<span class="promo-usable" style="color:#264b19">Yes.</span>')

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.historical:
            fields += ["historical", "external_campaign"]
        return fields

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/codes/generate/", view(self.codes_generate_view), name="campaigns_promotion_codes_generate"),
            path("<int:pk>/codes/upload/", view(self.codes_upload_view), name="campaigns_promotion_codes_upload"),
            path("catalogue/", view(self.catalogue_view), name="campaigns_promotion_catalogue"),
            path("matching/", view(self.matching_view), name="campaigns_promotion_matching"),
        ] + super().get_urls()

    def _may_look(self, request):
        return self.has_view_permission(request) or self.has_add_permission(request)

    def catalogue_view(self, request):
        """The pickers' suggestions: GET ?kind=category|brand&q=... -> {"options": [{value, items}]}."""
        if not self._may_look(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        kind, query = request.GET.get("kind", ""), request.GET.get("q", "")[:200]
        options = {"category": catalogue.category_options, "brand": catalogue.brand_options}.get(kind)
        if options is None:
            return JsonResponse({"error": "kind: expected 'category' or 'brand'."}, status=400)
        return JsonResponse({"options": options(query=query)})

    def matching_view(self, request):
        """The live count: POST the promotion form's item fields -> {"items": n, "offerable": m} or {"error"}."""
        if not self._may_look(request):
            return JsonResponse({"error": "forbidden"}, status=403)
        if request.method != "POST":
            return JsonResponse({"error": "POST the form's fields."}, status=405)
        rule = {name: ListField.to_list(request.POST.get(name)) for name in LIST_FIELDS}
        for name in ("items", "excluded_items"):
            values = request.POST.getlist(name)
            if not all(value.isdigit() for value in values):
                return JsonResponse({"error": f"{name}: expected item ids."}, status=400)
            rule[name] = [int(value) for value in values]
        return JsonResponse(catalogue.items_matching(**rule))

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        urls = {
            "catalogueUrl": reverse("admin:campaigns_promotion_catalogue"),
            "matchingUrl": reverse("admin:campaigns_promotion_matching"),
        }
        extra_context = {**(extra_context or {}), "items_config": urls}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "generate_form": CodeGenerateForm(),
            "upload_form": CodeUploadForm(),
            "may_add_codes": request.user.has_perm("campaigns.add_promotioncode"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _codes_action(self, request, pk, action):
        promotion = get_object_or_404(Promotion, pk=pk)
        back = redirect(reverse("admin:campaigns_promotion_change", args=[pk]) + "#codes")
        if request.method != "POST" or not request.user.has_perm("campaigns.add_promotioncode"):
            messages.error(request, "You may not add codes.")
            return back
        if promotion.code_mode != Promotion.CodeMode.POOL:
            messages.error(request, "This promotion uses one shared code: switch it to a code pool first.")
            return back
        try:
            added = action(promotion)
        except ValidationError as error:
            for message in error.messages:
                messages.error(request, message)
        else:
            messages.success(request, f"{added:,} codes added to the pool of '{promotion}'.")
        return back

    def codes_generate_view(self, request, pk):
        form = CodeGenerateForm(request.POST or None)

        def generate(promotion):
            if not form.is_valid():
                raise ValidationError([f"{k}: {' '.join(v)}" for k, v in form.errors.items()])
            return codes_generate(
                promotion=promotion, count=form.cleaned_data["count"], prefix=form.cleaned_data["prefix"]
            )

        return self._codes_action(request, pk, generate)

    def codes_upload_view(self, request, pk):
        form = CodeUploadForm(request.POST or None, request.FILES or None)

        def upload(promotion):
            if not form.is_valid():
                raise ValidationError("Choose a file of codes to upload.")
            return codes_upload(promotion=promotion, file=form.cleaned_data["file"])

        return self._codes_action(request, pk, upload)


@admin.register(PromotionCode)
class PromotionCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "promotion", "source", "recipient", "assigned_at"]
    list_filter = ["source", ("recipient", admin.EmptyFieldListFilter)]
    search_fields = ["code", "promotion__name"]
    list_select_related = ["promotion", "recipient__customer"]
    raw_id_fields = ["recipient"]

    def has_add_permission(self, request):
        return False  # codes come from "generate" or "upload" on the promotion's page

    def has_change_permission(self, request, obj=None):
        return False
