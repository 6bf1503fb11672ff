from django import forms
from django.contrib import admin, messages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from promo_site.outbox import outbox_enqueue
from shop.models import Customer, CustomerAudit, Event, EventType, ExternalCampaign, ExternalCoupon, ImportRun, Item
from shop.services.event_rows import FIELDS
from shop.services.privacy import customer_erase, customer_export


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "name",
        "email",
        "marketing_consent",
        "unsubscribed_at",
        "suppressed",
        "is_stub",
        "created_at",
    ]
    list_filter = [
        "marketing_consent",
        "suppressed",
        "is_stub",
        ("unsubscribed_at", admin.EmptyFieldListFilter),
        "time_zone",
    ]
    search_fields = ["external_id", "email", "name"]
    date_hierarchy = "created_at"
    readonly_fields = ["erased_at", "created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False  # counting millions of rows on every page is the slow part
    actions = ["export_personal_data", "erase_personal_data"]

    # Export and erasure are for admins only (superusers: no role is given these permissions).
    def has_export_permission(self, request):
        return request.user.has_perm("shop.export_customer")

    def has_erase_permission(self, request):
        return request.user.has_perm("shop.erase_customer")

    @admin.action(description="Export everything held about this customer (JSON)", permissions=["export"])
    def export_personal_data(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Export one customer at a time.", messages.ERROR)
            return None
        customer = queryset.get()
        data = customer_export(customer_id=customer.id, by=request.user)
        response = JsonResponse(data, encoder=DjangoJSONEncoder, json_dumps_params={"indent": 2})
        response["Content-Disposition"] = f'attachment; filename="customer-{customer.id}.json"'
        return response

    @admin.action(description="Erase the personal data of the selected customers", permissions=["erase"])
    def erase_personal_data(self, request, queryset):
        if request.POST.get("confirmed") != "yes":
            context = {
                **self.admin_site.each_context(request),
                "title": "Erase personal data",
                "customers": queryset,
                "action": "erase_personal_data",
                "opts": self.model._meta,
            }
            return TemplateResponse(request, "admin/shop/customer/erase_confirmation.html", context)
        for customer_id in queryset.values_list("id", flat=True):
            customer_erase(customer_id=customer_id, by=request.user)
        self.message_user(request, f"Erased {len(queryset)} customer(s); their external ids are kept as tombstones.")
        return None


@admin.register(CustomerAudit)
class CustomerAuditAdmin(admin.ModelAdmin):
    """Who exported or erased whom, and when: read-only."""

    list_display = ["at", "action", "customer", "by", "detail"]
    list_filter = ["action"]
    search_fields = ["customer__external_id"]
    raw_id_fields = ["customer"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "title", "category_path", "brand", "price", "cost", "active", "in_stock"]
    list_filter = ["active", "in_stock", "is_stub"]
    search_fields = ["external_id", "title", "brand", "category_path"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["occurred_at", "type", "customer", "item", "quantity", "value", "discount", "source"]
    list_filter = ["type", "source"]
    search_fields = ["customer__external_id", "item__external_id", "client_event_id"]
    date_hierarchy = "occurred_at"
    raw_id_fields = ["customer", "item"]
    list_select_related = ["customer", "item"]
    readonly_fields = ["received_at"]
    list_per_page = 50
    show_full_result_count = False


class ImportUploadForm(forms.ModelForm):
    """An upload with the same choices as `import_events`: which column holds which field."""

    event_type = forms.ChoiceField(choices=[("", "from the file's type column")] + EventType.choices, required=False)
    source = forms.CharField(required=False, help_text="The system the events come from (default: file:<name>).")

    class Meta:
        model = ImportRun
        fields = ["file"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in FIELDS:
            self.fields[f"column_{name}"] = forms.CharField(
                required=False, label=f"Column for {name}", help_text=f"blank: a column named '{name}'"
            )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not upload.name.lower().endswith((".csv", ".parquet", ".pq", ".txt")):
            raise forms.ValidationError("Upload a CSV or Parquet file (.csv, .parquet).")
        return upload

    def save(self, commit=True):
        run = super().save(commit=False)
        mapping = {
            name: self.cleaned_data[f"column_{name}"].strip()
            for name in FIELDS
            if self.cleaned_data.get(f"column_{name}", "").strip()
        }
        run.options = {
            "mapping": mapping,
            "event_type": self.cleaned_data["event_type"] or None,
            "source": self.cleaned_data["source"].strip() or None,
        }
        if commit:
            run.save()
        return run


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    """Uploading a file here queues its import on a Celery worker; the list shows progress and outcome."""

    list_display = ["created_at", "source_name", "status", "total", "stored", "duplicates", "rejected", "report_link"]
    list_filter = ["status", "kind"]
    date_hierarchy = "created_at"
    fields = [
        "file",
        "options",
        "status",
        "source_name",
        "rows_total",
        "rows_stored",
        "rows_duplicate",
        "rows_rejected",
        "customers_created",
        "items_created",
        "report",
        "error",
        "created_by",
        "started_at",
        "finished_at",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            return ImportUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["file", "event_type", "source", *[f"column_{name}" for name in FIELDS]]
        return self.fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.fields

    def has_change_permission(self, request, obj=None):
        return False  # an import is a record of what happened

    @admin.display(description="rows", ordering="rows_total")
    def total(self, obj):
        return obj.rows_total

    @admin.display(description="stored", ordering="rows_stored")
    def stored(self, obj):
        return obj.rows_stored

    @admin.display(description="already there", ordering="rows_duplicate")
    def duplicates(self, obj):
        return obj.rows_duplicate

    @admin.display(description="rejected", ordering="rows_rejected")
    def rejected(self, obj):
        return obj.rows_rejected

    @admin.display(description="report")
    def report_link(self, obj):
        if not obj.report:
            return "–"
        return format_html(
            '<a href="{}">rejected rows (CSV)</a>', reverse("admin:shop_importrun_report", args=[obj.pk])
        )

    def get_urls(self):
        report = path("<int:pk>/report/", self.admin_site.admin_view(self.report_view), name="shop_importrun_report")
        return [report] + super().get_urls()

    def report_view(self, request, pk):
        run = get_object_or_404(ImportRun, pk=pk)
        if not self.has_view_permission(request, run) or not run.report:
            raise Http404("no report")
        return FileResponse(run.report.open("rb"), as_attachment=True, filename=f"import-{run.pk}-rejected.csv")

    def changelist_view(self, request, extra_context=None):
        in_flight = ImportRun.objects.filter(status__in=[ImportRun.Status.QUEUED, ImportRun.Status.RUNNING]).exists()
        return super().changelist_view(request, {**(extra_context or {}), "imports_in_flight": in_flight})

    def response_add(self, request, obj, post_url_continue=None):
        return redirect("admin:shop_importrun_changelist")

    def save_model(self, request, obj, form, change):
        if change:
            return
        obj.created_by = request.user
        obj.kind = "events"
        obj.source_name = obj.file.name.rsplit("/", 1)[-1]
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            outbox_enqueue("shop.tasks.import_run", obj.id)
        messages.info(request, "The import is queued; this page shows its progress.")


class ExternalCouponInline(admin.TabularInline):
    model = ExternalCoupon
    raw_id_fields = ["items"]
    extra = 0
    max_num = 0
    show_change_link = True


@admin.register(ExternalCampaign)
class ExternalCampaignAdmin(admin.ModelAdmin):
    list_display = ["external_id", "source", "campaign_type", "start_date", "end_date"]
    list_filter = ["source", "campaign_type"]
    raw_id_fields = ["targeted"]
    date_hierarchy = "start_date"


@admin.register(ExternalCoupon)
class ExternalCouponAdmin(admin.ModelAdmin):
    list_display = ["code", "campaign"]
    search_fields = ["code"]
    raw_id_fields = ["items"]
