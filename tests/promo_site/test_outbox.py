"""The outbox: follow-up work commits with the change that causes it and survives a broker outage."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from promo_site.models import OutboxTask
from promo_site.outbox import outbox_dispatch, outbox_enqueue, outbox_prune
from tests.conftest import REPO, _database_url

pytestmark = pytest.mark.django_db(transaction=True)
HARMLESS = "promo_site.tasks.heartbeat"  # a task whose run changes nothing the tests look at


def test_it_dispatches_after_the_commit_and_not_before():
    with transaction.atomic():
        row_id = outbox_enqueue(HARMLESS, countdown=5)
        # inside the transaction nothing has gone to the broker yet
        assert OutboxTask.objects.get(id=row_id).dispatched_at is None
    row = OutboxTask.objects.get(id=row_id)
    assert row.dispatched_at is not None and row.attempts == 0
    assert row.not_before > row.created_at + timedelta(seconds=4)


def test_due_work_goes_without_an_eta_and_later_work_with_one():
    # A worker fetches a task with an ETA at once and holds it beyond its prefetch limit: due work sent with one
    # piles up in the first worker to fetch while the others idle. So only work not yet due carries one.
    from celery.signals import before_task_publish

    published = []

    def record(sender=None, headers=None, **kwargs):
        published.append((sender, headers.get("eta")))

    before_task_publish.connect(record, weak=False)
    try:
        with transaction.atomic():
            outbox_enqueue(HARMLESS)
        with transaction.atomic():
            later = outbox_enqueue(HARMLESS, countdown=60)
    finally:
        before_task_publish.disconnect(record)
    assert [name for name, _ in published] == [HARMLESS, HARMLESS]
    assert published[0][1] is None
    eta = published[1][1]
    assert eta is not None and abs(
        timezone.datetime.fromisoformat(eta) - OutboxTask.objects.get(id=later).not_before
    ) < timedelta(seconds=1)


def test_a_rolled_back_change_takes_its_follow_up_work_with_it():
    with pytest.raises(RuntimeError), transaction.atomic():
        outbox_enqueue(HARMLESS)
        raise RuntimeError("the change fails")
    assert not OutboxTask.objects.exists()


def test_a_broker_outage_keeps_the_work_and_the_request_succeeds():
    # given a process whose broker is down (nothing listens on port 1), storing a change and its follow-up work
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        DJANGO_SETTINGS_MODULE="promo_site.settings",
    )
    script = (
        "import django; django.setup()\n"
        "from django.db import transaction\n"
        "from promo_site.outbox import outbox_enqueue\n"
        "with transaction.atomic():\n"
        f"    print(outbox_enqueue({HARMLESS!r}))\n"
    )
    # when
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    # then the request ended well, and the work waits in the outbox with the broker's error
    assert done.returncode == 0, done.stderr[-3000:]
    row = OutboxTask.objects.get(id=int(done.stdout.split()[-1]))
    assert (row.dispatched_at, row.attempts) == (None, 1)
    assert "refused" in row.last_error.lower(), row.last_error
    # when the broker is back and the periodic dispatcher runs (the row is past its grace period)
    OutboxTask.objects.filter(id=row.id).update(created_at=timezone.now() - timedelta(minutes=5))
    assert outbox_dispatch() == 1
    # then it went, once
    assert OutboxTask.objects.get(id=row.id).dispatched_at is not None
    assert outbox_dispatch() == 0


def test_the_periodic_dispatcher_leaves_fresh_rows_to_their_own_commit_and_prunes_old_ones():
    fresh = OutboxTask.objects.create(task=HARMLESS, not_before=timezone.now())
    assert outbox_dispatch() == 0
    assert OutboxTask.objects.get(id=fresh.id).dispatched_at is None
    old = timezone.now() - timedelta(days=8)
    OutboxTask.objects.create(task=HARMLESS, not_before=old, dispatched_at=old)
    assert outbox_prune() == 1


def test_a_row_that_cannot_be_sent_is_recorded_and_does_not_hold_up_the_others():
    old = timezone.now() - timedelta(minutes=5)
    broken = OutboxTask.objects.create(task="no.such.task", not_before=old)
    fine = OutboxTask.objects.create(task=HARMLESS, not_before=old)
    OutboxTask.objects.update(created_at=old)
    assert outbox_dispatch() == 1
    broken.refresh_from_db(), fine.refresh_from_db()
    assert (broken.dispatched_at, broken.attempts) == (None, 1) and "no.such.task" in broken.last_error
    assert fine.dispatched_at is not None


def test_the_events_api_answers_and_keeps_the_attribution_when_the_broker_is_down(api_token):
    # given a web process whose broker is down, and a purchase posted to the events API
    env = dict(
        os.environ,
        DATABASE_URL=_database_url(connection.settings_dict),
        CELERY_BROKER_URL="redis://127.0.0.1:1/0",
        ALLOWED_HOSTS="testserver",
        DJANGO_SETTINGS_MODULE="promo_site.settings",
    )
    body = {
        "source": "shop",
        "events": [
            {
                "event_id": "o-1",
                "customer": "c-1",
                "item": "sku-1",
                "type": "purchase",
                "occurred_at": timezone.now().isoformat(),
                "value": "9.50",
            }
        ],
    }
    script = (
        "import django, json, sys; django.setup()\n"
        "from rest_framework.test import APIClient\n"
        "client = APIClient()\n"
        f"client.credentials(HTTP_AUTHORIZATION='Token {api_token.key}')\n"
        f"response = client.post('/api/v1/events/', {body!r}, format='json')\n"
        "print(response.status_code, json.dumps(response.json()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    # then the request succeeded with what it stored, and the attribution waits in the outbox
    assert done.returncode == 0, done.stderr[-3000:]
    status, answer = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert (status, json.loads(answer)["stored"]) == ("200", 1), answer
    waiting = OutboxTask.objects.get(task="campaigns.tasks.attribute_events")
    assert waiting.dispatched_at is None and "refused" in waiting.last_error.lower()
