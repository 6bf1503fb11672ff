from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from campaigns.admin.common import ActingUserMixin
from campaigns.models import Batch, Campaign
from campaigns.rendering import FIELDS, TemplateProblem
from campaigns.services.batches import batch_request, campaign_blockers
from campaigns.services.preview import template_preview


class BatchInline(admin.TabularInline):
    model = Batch
    fields = ["link", "status", "recipients", "created_by", "created_at", "decided_by"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False
    ordering = ["-number"]

    @admin.display(description="batch")
    def link(self, obj):
        return format_html('<a href="{}">#{}</a>', reverse("admin:campaigns_batch_change", args=[obj.pk]), obj.number)

    @admin.display(description="recipients")
    def recipients(self, obj):
        return obj.summary.get("recipients", "–")

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Campaign)
class CampaignAdmin(ActingUserMixin, admin.ModelAdmin):
    list_display = ["name", "audience", "channel", "holdout_percent", "latest_batch", "created_by", "updated_at"]
    search_fields = ["name"]
    list_filter = ["channel"]
    filter_horizontal = ["promotions"]
    readonly_fields = ["template_fields", "promotion_states", "created_by", "version"]
    inlines = [BatchInline]
    change_form_template = "admin/campaigns/campaign/change_form.html"
    fieldsets = [
        (None, {"fields": ["name", "audience", "channel"]}),
        ("Offer", {"fields": ["promotions", "promotion_states", "base_response_rate", "only_where_it_pays"]}),
        (
            "Message",
            {
                "fields": [
                    "subject_template",
                    "body_template",
                    "template_fields",
                    "items_per_message",
                    "item_kinds",
                ]
            },
        ),
        (
            "Who and when",
            {
                "fields": [
                    "targeting",
                    "target_percent",
                    "holdout_percent",
                    "measured_response",
                    "frequency_cap_messages",
                    "frequency_cap_days",
                    "quiet_hours_start",
                    "quiet_hours_end",
                    "send_at",
                    "seed_emails",
                ]
            },
        ),
        ("Record", {"fields": ["created_by", "version"], "classes": ["collapse"]}),
    ]

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        if db_field.name == "promotions":
            kwargs["queryset"] = db_field.related_model.objects.filter(historical=False)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    @admin.display(description="latest batch")
    def latest_batch(self, obj):
        batch = obj.batches.order_by("-number").first()
        return f"#{batch.number} {batch.get_status_display()}" if batch else "–"

    @admin.display(description="fields a template may use")
    def template_fields(self, obj):
        rows = format_html_join("", "<tr><td><code>{}</code></td><td>{}</td></tr>", FIELDS.items())
        return format_html(
            '<table class="compact">{}</table><p class="help">Write <code>{{{{ customer.first_name }}}}</code>; '
            "values are HTML-escaped; any other name is an error.</p>",
            rows,
        )

    @admin.display(description="promotions now")
    def promotion_states(self, obj):
        if not obj.pk:
            return "–"
        rows = [(p.name, p.unusable_reason() or "can be offered") for p in obj.promotions.all()]
        return format_html_join("", "<div>{}: {}</div>", rows) or "none chosen"

    def get_urls(self):
        generate = self.admin_site.admin_view(self.generate_view)
        preview = self.admin_site.admin_view(self.preview_view)
        return [
            path("<int:pk>/generate/", generate, name="campaigns_campaign_generate"),
            path("preview/", preview, name="campaigns_campaign_preview"),
        ] + super().get_urls()

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "preview_config": {"previewUrl": reverse("admin:campaigns_campaign_preview")},
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    def preview_view(self, request):
        """The editor's live preview: POST the form -> {customer, subject, html, text} or {"error"}."""
        if not (self.has_view_permission(request) or self.has_add_permission(request)):
            return JsonResponse({"error": "forbidden"}, status=403)
        if request.method != "POST":
            return JsonResponse({"error": "POST the form's fields."}, status=405)
        promotions = request.POST.getlist("promotions")
        sample = request.POST.get("sample", "0")
        if not all(p.isdigit() for p in promotions) or not sample.isdigit():
            return JsonResponse({"error": "promotions and sample: expected whole numbers."}, status=400)
        try:
            preview = template_preview(
                subject_template=request.POST.get("subject_template", ""),
                body_template=request.POST.get("body_template", ""),
                promotion_ids=[int(p) for p in promotions],
                sample=int(sample),
            )
        except TemplateProblem as problem:
            return JsonResponse({"error": str(problem)}, status=400)
        return JsonResponse(preview)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        extra_context = {
            **(extra_context or {}),
            "blockers": campaign_blockers(campaign) if campaign else [],
            "may_generate": request.user.has_perm("campaigns.add_batch"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def generate_view(self, request, pk):
        campaign = get_object_or_404(Campaign, pk=pk)
        if request.method != "POST":
            return redirect("admin:campaigns_campaign_change", pk)
        try:
            batch = Batch.objects.get(pk=batch_request(campaign=campaign, by=request.user))
        except (ValidationError, PermissionDenied) as error:
            for message in getattr(error, "messages", [str(error)]):
                messages.error(request, message)
            return redirect("admin:campaigns_campaign_change", pk)
        messages.success(request, f"Batch #{batch.number} is being generated; this page shows its progress.")
        return redirect("admin:campaigns_batch_change", batch.pk)
