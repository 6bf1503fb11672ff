from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path
from django.utils.html import format_html, format_html_join

from campaigns.models import UpliftModel
from promo_site.jobs import Job

JOB_FIELDS = {f.name for f in Job._meta.fields}


@admin.register(UpliftModel)
class UpliftModelAdmin(admin.ModelAdmin):
    """The uplift model's trainings, newest first; "Train the uplift model" queues one on the ml queue."""

    list_display = ["id", "status", "chosen", "validation_qini", "n_treated", "n_control", "finished_at", "error"]
    # The model's own columns first, then the long job's (started, heartbeat, error...); the JSON columns and
    # the job's progress report as readable tables or lists, never raw JSON.
    readonly_fields = [
        {
            "features": "feature_list",
            "scores": "scores_table",
            "batches": "batch_list",
            "progress": "progress_table",
        }.get(name, name)
        for name in sorted((f.name for f in UpliftModel._meta.fields), key=lambda name: name in JOB_FIELDS)
        if name != "id"
    ]
    fields = readonly_fields

    @admin.display(description="features")
    def feature_list(self, obj):
        return ", ".join(obj.features) or "–"

    @admin.display(description="batches learnt from")
    def batch_list(self, obj):
        return ", ".join(f"#{batch_id}" for batch_id in obj.batches) or "–"

    @admin.display(description="validation scores")
    def scores_table(self, obj):
        """A row per candidate estimator, a column per score; the chosen one first."""
        names = sorted(obj.scores, key=lambda name: (name != obj.chosen, name))
        columns = sorted({key for scores in obj.scores.values() if isinstance(scores, dict) for key in scores})
        if not names:
            return "–"
        head = format_html_join("", "<th>{}</th>", [(c,) for c in columns])
        rows = format_html_join(
            "",
            "<tr><th>{}</th>{}</tr>",
            [
                (name, format_html_join("", "<td>{}</td>", [(_number(obj.scores[name].get(c)),) for c in columns]))
                for name in names
            ],
        )
        return format_html('<table class="compact"><tr><th></th>{}</tr>{}</table>', head, rows)

    @admin.display(description="last progress report")
    def progress_table(self, obj):
        rows = [(key, _number(value)) for key, value in (obj.progress or {}).items()]
        if not rows:
            return "–"
        return format_html(
            '<table class="compact">{}</table>', format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
        )

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


def _number(value):
    return f"{value:.4f}" if isinstance(value, float) else ("–" if value is None else value)
