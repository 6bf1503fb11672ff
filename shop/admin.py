from django.contrib import admin, messages
from django.db import transaction

from shop.models import Customer, Event, ExternalCampaign, ExternalCoupon, ImportRun, Item


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["external_id", "name", "email", "marketing_consent", "unsubscribed_at", "suppressed", "is_stub", "created_at"]
    list_filter = ["marketing_consent", "suppressed", "is_stub", ("unsubscribed_at", admin.EmptyFieldListFilter), "time_zone"]
    search_fields = ["external_id", "email", "name"]
    date_hierarchy = "created_at"
    readonly_fields = ["created_at", "updated_at"]
    list_per_page = 50
    show_full_result_count = False  # counting millions of rows on every page is the slow part


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


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    """Uploading a file here queues its import on a Celery worker; the list shows progress and outcome."""

    list_display = ["created_at", "kind", "source_name", "status", "rows_total", "rows_stored", "rows_duplicate", "rows_rejected", "created_by"]
    list_filter = ["status", "kind"]
    date_hierarchy = "created_at"
    fields = ["file", "options", "status", "source_name", "rows_total", "rows_stored", "rows_duplicate",
              "rows_rejected", "customers_created", "items_created", "report", "error", "created_by",
              "started_at", "finished_at"]

    def get_readonly_fields(self, request, obj=None):
        result = [f for f in self.fields if f not in ("file", "options")]
        return result if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        from shop.tasks import import_run

        if change:
            return
        obj.created_by = request.user
        obj.kind = "events"
        obj.source_name = obj.file.name.rsplit("/", 1)[-1]
        super().save_model(request, obj, form, change)
        transaction.on_commit(lambda: import_run.delay(obj.id))
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
