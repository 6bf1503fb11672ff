from celery import shared_task

from shop.services.imports import IMPORT_JOB, import_run_execute


@shared_task(queue="default", acks_late=True, time_limit=3600, soft_time_limit=3500, max_retries=0)
def import_run(run_id):
    import_run_execute(run_id=run_id)


@shared_task(queue="default", time_limit=60)
def sweep_stale_imports():
    """Beat: an import whose worker stopped is failed (it stored nothing: one transaction)."""
    IMPORT_JOB.sweep()
