from celery import shared_task

from promo_site import health


@shared_task(queue="default", ignore_result=True, time_limit=30)
def heartbeat():
    """Beat sends this every minute; the status page shows whether beat and a worker are alive."""
    health.record_heartbeat()


@shared_task(queue="default", ignore_result=True, time_limit=300, soft_time_limit=280)
def outbox_dispatch():
    """Beat, every minute: send follow-up work whose dispatch after its commit failed (a broker outage)."""
    from promo_site.outbox import outbox_dispatch as dispatch
    from promo_site.outbox import outbox_prune

    dispatch()
    outbox_prune()
