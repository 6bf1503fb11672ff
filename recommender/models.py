"""The model registry: every trained model version, its metrics, its artifact and its state."""

from django.conf import settings
from django.db import models

from promo_site.jobs import Job
from recommender.ml.registry import MODELS

# The models a version can train, from the one table of models (recommender/ml/registry.py).
Algorithm = models.TextChoices("Algorithm", [(spec.name.upper(), (spec.name, spec.label)) for spec in MODELS])


class ItemChoice(models.TextChoices):
    """Which items a campaign recommends: "buy again" (bought before), "new to them", or both (serving.py)."""

    BOTH = "both", "both, ranked together"
    BUY_AGAIN = "buy_again", "buy again (bought before)"
    NEW = "new", "new to them (never bought)"


class ModelVersionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(status=ModelVersion.Status.ACTIVE)

    def in_flight(self):
        return self.filter(status__in=[ModelVersion.Status.QUEUED, ModelVersion.Status.TRAINING])


class ModelVersion(Job):
    """One trained (or training) model.

    State machine (each transition is one service in recommender/services.py):

        queued -> training -> ready -> active -> retired -> active (restore)
                         \\-> failed
        training -> failed (sweeper: no progress report for 45 minutes; the worker died)

    queued -> training -> ready | failed is a long job (promo_site/jobs.py): TRAINING_JOB in services.py.

    At most one version is active (a partial unique constraint); activating one retires the
    previous active version. Failing or killing a training never touches the active version.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        TRAINING = "training"
        READY = "ready"
        FAILED = "failed"
        ACTIVE = "active"
        RETIRED = "retired"

    algorithm = models.CharField(max_length=32, choices=Algorithm.choices)
    parameters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True)
    reason = models.CharField(max_length=64, default="manual", help_text="manual, scheduled or first run")
    data_from = models.DateTimeField(null=True, blank=True)
    data_until = models.DateTimeField(null=True, blank=True)
    n_customers = models.IntegerField(default=0)
    n_items = models.IntegerField(default=0)
    n_events = models.BigIntegerField(default=0)
    metrics = models.JSONField(
        default=dict,
        blank=True,
        help_text="validation and test metrics (leave-one-out: each customer's last two items)",
    )
    progress = models.JSONField(default=dict, blank=True, help_text="epoch, validation metric, elapsed, eta")
    artifact = models.CharField(max_length=300, blank=True, help_text="folder under MEDIA_ROOT")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("activate_modelversion", "Can activate a model version (it then serves campaigns)")]
        constraints = [
            models.UniqueConstraint(fields=["status"], condition=models.Q(status="active"), name="one_active_model"),
        ]

    def __str__(self):
        return f"#{self.id} {self.get_algorithm_display()} ({self.status})"

    @property
    def train_seconds(self):
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None


class ModelEvent(models.Model):
    """Audit trail of the registry: who did what to which version, and when."""

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="audit")
    action = models.CharField(max_length=32)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    at = models.DateTimeField(auto_now_add=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self):
        at = f" at {self.at:%Y-%m-%d %H:%M} UTC" if self.at else ""
        return f"{self.action} by {self.by or 'the system'}{at}"
