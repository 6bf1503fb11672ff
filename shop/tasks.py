from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from shop.models import ImportRun
from shop.services.imports import import_run_execute

STALE_AFTER = timedelta(hours=2)


@shared_task(queue="default", acks_late=True, time_limit=3600, soft_time_limit=3500, max_retries=0)
def import_run(run_id):
    import_run_execute(run_id=run_id)


@shared_task(queue="default", time_limit=60)
def sweep_stale_imports():
    """An import whose worker died mid-way is marked failed (it stored nothing: one transaction)."""
    ImportRun.objects.filter(status=ImportRun.Status.RUNNING, started_at__lt=timezone.now() - STALE_AFTER).update(
        status=ImportRun.Status.FAILED,
        error="The worker stopped before the import finished; nothing was stored.",
        finished_at=timezone.now(),
    )
