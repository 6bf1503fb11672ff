"""The Celery application.

Three queues separate kinds of work so that each can be scaled on its own
hosts: `default` (imports, batch generation, attribution), `ml` (training;
TensorFlow is imported only inside these tasks, after the fork) and `send`
(e-mail, rate-limited). Tasks declare their queue on the decorator.
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "promo_site.settings")

app = Celery("promo_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("default"), Queue("ml"), Queue("send"))
app.autodiscover_tasks()
