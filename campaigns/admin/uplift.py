from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path

from campaigns.models import UpliftModel
from promo_site.jobs import Job

JOB_FIELDS = {f.name for f in Job._meta.fields}


@admin.register(UpliftModel)
class UpliftModelAdmin(admin.ModelAdmin):
    """The uplift model's trainings, newest first; "Train the uplift model" queues one on the ml queue."""

    list_display = ["id", "status", "chosen", "validation_qini", "n_treated", "n_control", "finished_at", "error"]
    # The model's own columns first, then the long job's (started, heartbeat, error...).
    readonly_fields = sorted((f.name for f in UpliftModel._meta.fields), key=lambda name: name in JOB_FIELDS)
    change_list_template = "admin/campaigns/upliftmodel/change_list.html"

    @admin.display(description="validation Qini")
    def validation_qini(self, obj):
        scores = obj.scores.get(obj.chosen) if obj.chosen else None
        return f"{scores['qini']:.4f}" if scores else "–"

    def has_add_permission(self, request):
        return False  # trainings start from the button (a POST), not a form

    def has_change_permission(self, request, obj=None):
        return False

    def get_urls(self):
        train = self.admin_site.admin_view(self.train_view)
        return [path("train/", train, name="campaigns_upliftmodel_train")] + super().get_urls()

    def train_view(self, request):
        from campaigns.services.uplift_targeting import uplift_model_request

        if request.method != "POST":
            return redirect("admin:campaigns_upliftmodel_changelist")
        if not request.user.has_perm("campaigns.add_upliftmodel"):
            raise PermissionDenied
        model_id = uplift_model_request(by=request.user)
        messages.success(request, f"Uplift model {model_id} is queued; a worker on the ml queue trains it.")
        return redirect("admin:campaigns_upliftmodel_changelist")
