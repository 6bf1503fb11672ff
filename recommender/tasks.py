from celery import shared_task

from recommender import services


@shared_task(queue="ml", acks_late=True, time_limit=2 * 3600, soft_time_limit=2 * 3600 - 60, max_retries=0)
def train_model_version(version_id):
    """Train one version. TensorFlow is imported inside, in the worker process after the fork."""
    services.modelversion_train(version_id=version_id)


@shared_task(queue="default", time_limit=60)
def retrain_scheduled():
    """Beat's periodic retraining on the latest events; the result activates itself unless it validates worse."""
    if services.ModelVersion.objects.in_flight().exists():
        return  # one training at a time is enough on a small host
    services.modelversion_request(algorithm="deep", reason="scheduled")


@shared_task(queue="default", time_limit=60)
def sweep_stale_trainings():
    services.modelversion_sweep_stale()
