from celery import shared_task

from campaigns.services.generation import batch_generate


@shared_task(queue="default", acks_late=True, time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60, max_retries=0)
def generate_batch(batch_id):
    """Generate one batch; a redelivery after a lost worker resumes where the rows end."""
    batch_generate(batch_id=batch_id)


@shared_task(queue="send", acks_late=True, time_limit=300, max_retries=3, default_retry_delay=30)
def send_test_messages(batch_id, recipient_ids, seeds):
    from campaigns.services.testsend import test_messages_send

    test_messages_send(batch_id=batch_id, recipient_ids=recipient_ids, seeds=seeds)
