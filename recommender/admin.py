from django import forms
from django.contrib import admin, messages
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from recommender.models import Algorithm, ModelEvent, ModelVersion
from recommender.services import RegistryError, modelversion_activate, modelversion_request


class TrainForm(forms.Form):
    algorithm = forms.ChoiceField(choices=Algorithm.choices, initial=Algorithm.DEEP)


def _table(rows):
    """(label, value) pairs as a small table: what a JSON field holds, readable."""
    if not rows:
        return "–"
    return format_html(
        '<table class="compact">{}</table>', format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", rows)
    )


def _value(value):
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items())
    return value


# how the deep model's rankings of each kind of item read (recommender/ml/deep_repeat.py)
RANKINGS_READ = {"model": "the model itself", "tifuknn": "TIFU-KNN"}
RANKED_KINDS = {"repeat_rank": "buy-again items", "explore_rank": "new items"}


def _metric(version, part, name):
    value = version.metrics.get(part, {}).get(name)
    return "–" if value is None else _value(value)


class ModelEventInline(admin.TabularInline):
    model = ModelEvent
    fields = ["at", "action", "by", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    """Every version with its metrics side by side; training progress updates live on the version's page."""

    list_display = [
        "id",
        "algorithm",
        "status",
        "reason",
        "val_basket_recall10",
        "val_ndcg10",
        "val_hr10",
        "test_ndcg10",
        "test_hr10",
        "n_events",
        "seconds",
        "created_at",
        "created_by",
    ]
    list_filter = ["status", "algorithm", "reason"]
    actions = ["activate"]
    inlines = [ModelEventInline]
    change_form_template = "admin/recommender/modelversion/change_form.html"
    change_list_template = "admin/recommender/modelversion/change_list.html"
    readonly_fields = [
        "algorithm",
        "trained_mode",
        "parameters_table",
        "status",
        "reason",
        "data_from",
        "data_until",
        "n_customers",
        "n_items",
        "n_events",
        "metrics_table",
        "progress_table",
        "artifact",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "heartbeat_at",
        "finished_at",
        "activated_at",
        "activated_by",
    ]

    @admin.display(description="trained as")
    def trained_mode(self, obj):
        """What the version learned to score: the next order (on the shop's orders) or the next item."""
        mode = obj.metrics.get("mode")
        text = {
            "next-basket": "next order, repeat-aware (fitted on the shop's orders)",
            "next-item": "next item (fitted on item sequences)",
        }.get(mode, "–")
        for key, choice in obj.metrics.get("rank_choice", {}).items():  # chosen at V (registry.py rank_choice)
            tried = ", ".join(
                f"{RANKINGS_READ.get(value, value)} {figure:.4f}" for value, figure in choice["measured"].items()
            )
            chosen = RANKINGS_READ.get(choice["chosen"], choice["chosen"])
            text += f"; {RANKED_KINDS.get(key, key)} ranked by {chosen} ({choice['metric']} at V: {tried})"
        return text

    @admin.display(description="parameters")
    def parameters_table(self, obj):
        return _table([(name, _value(value)) for name, value in sorted(obj.parameters.items())])

    @admin.display(description="metrics")
    def metrics_table(self, obj):
        """One row per metric, validation and test side by side."""
        parts = ["validation", "test"]
        names = sorted({name for part in parts for name in obj.metrics.get(part, {})})
        if not names:
            return "–"
        head = format_html("<tr><th></th>{}</tr>", format_html_join("", "<th>{}</th>", [(p,) for p in parts]))
        rows = format_html_join(
            "", "<tr><th>{}</th><td>{}</td><td>{}</td></tr>", [(n, *(_metric(obj, p, n) for p in parts)) for n in names]
        )
        return format_html('<table class="compact" id="metrics-table">{}{}</table>', head, rows)

    @admin.display(description="last progress report")
    def progress_table(self, obj):
        return _table([(name, _value(value)) for name, value in obj.progress.items()])

    @admin.display(description="val next-basket recall@10")
    def val_basket_recall10(self, obj):
        return _metric(obj, "validation", "next_basket_recall@10")

    @admin.display(description="val NDCG@10")
    def val_ndcg10(self, obj):
        return _metric(obj, "validation", "ndcg@10")

    @admin.display(description="val HR@10")
    def val_hr10(self, obj):
        return _metric(obj, "validation", "hr@10")

    @admin.display(description="test NDCG@10")
    def test_ndcg10(self, obj):
        return _metric(obj, "test", "ndcg@10")

    @admin.display(description="test HR@10")
    def test_hr10(self, obj):
        return _metric(obj, "test", "hr@10")

    @admin.display(description="train s")
    def seconds(self, obj):
        return f"{obj.train_seconds:.0f}" if obj.train_seconds is not None else "–"

    def has_add_permission(self, request):
        return False  # versions come from "Train a new version", never typed in

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        # The active version serves campaigns, and a training's worker still writes to its row.
        if obj is not None and obj.status in (ModelVersion.Status.ACTIVE, ModelVersion.Status.TRAINING):
            return False
        return super().has_delete_permission(request, obj)

    def get_urls(self):
        return [
            path("train/", self.admin_site.admin_view(self.train_view), name="recommender_modelversion_train"),
            path(
                "<int:pk>/progress/",
                self.admin_site.admin_view(self.progress_view),
                name="recommender_modelversion_progress",
            ),
            path(
                "<int:pk>/activate/",
                self.admin_site.admin_view(self.activate_view),
                name="recommender_modelversion_activate",
            ),
        ] + super().get_urls()

    def train_view(self, request):
        if not request.user.has_perm("recommender.add_modelversion"):
            messages.error(request, "You may not start trainings.")
            return redirect("admin:recommender_modelversion_changelist")
        form = TrainForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            version_id = modelversion_request(algorithm=form.cleaned_data["algorithm"], by=request.user)
            messages.success(request, f"Version #{version_id} is queued; this page shows its progress.")
            return redirect("admin:recommender_modelversion_change", version_id)
        context = {
            **self.admin_site.each_context(request),
            "form": form,
            "title": "Train a new model version",
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/recommender/modelversion/train.html", context)

    def progress_view(self, request, pk):
        version = get_object_or_404(ModelVersion, pk=pk)
        if not self.has_view_permission(request, version):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse(
            {"status": version.status, "progress": version.progress, "error": version.error, "metrics": version.metrics}
        )

    def activate_view(self, request, pk):
        if request.method == "POST":
            self._activate(request, get_object_or_404(ModelVersion, pk=pk))
        return redirect(reverse("admin:recommender_modelversion_change", args=[pk]))

    def has_activate_permission(self, request):
        return request.user.has_perm("recommender.activate_modelversion")

    @admin.action(description="Activate the selected version (it then serves campaigns)", permissions=["activate"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        self._activate(request, queryset.get())

    def _activate(self, request, version):
        if not request.user.has_perm("recommender.activate_modelversion"):
            self.message_user(request, "You may not activate model versions.", messages.ERROR)
            return
        try:
            modelversion_activate(version=version, by=request.user)
        except RegistryError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Version #{version.id} is active.", messages.SUCCESS)
