from celery import shared_task

from promo_site import health


@shared_task(queue="default", ignore_result=True, time_limit=30)
def heartbeat():
    """Beat sends this every minute; the status page shows whether beat and a worker are alive."""
    health.record_heartbeat()
