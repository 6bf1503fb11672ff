"""Integration with a real Celery worker process on Redis (no eager mode)."""

import pytest
from django.core.files.base import ContentFile

from promo_site import health
from promo_site.tasks import heartbeat
from shop.models import Event, ImportRun
from shop.tasks import import_run
from tests.conftest import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_runs_the_heartbeat(celery_worker):
    assert health.last_heartbeat() is None
    heartbeat.delay()
    assert wait_for(health.last_heartbeat, timeout=30)


def test_an_uploaded_file_is_imported_by_the_worker(celery_worker, marketer, settings, tmp_path):
    # given an upload queued from the admin
    settings.MEDIA_ROOT = celery_worker.media_root
    run = ImportRun(
        source_name="upload.csv",
        created_by=marketer,
        options={"mapping": {"customer": "who", "occurred_at": "when"}, "event_type": "view", "source": "upload"},
    )
    run.file.save("upload.csv", ContentFile(b"who,when,item\nc1,2024-01-01,i1\nc2,yesterday,i2\n"), save=True)
    # when the worker takes it
    import_run.delay(run.id)
    # then it ends done, with the good row stored and the bad one reported
    done = wait_for(lambda: ImportRun.objects.filter(id=run.id, status__in=["done", "failed"]).first(), timeout=60)
    assert (done.status, done.error) == ("done", "")
    assert (done.rows_total, done.rows_stored, done.rows_rejected) == (2, 1, 1)
    assert Event.objects.get().customer.external_id == "c1"
    assert "unparseable date" in (celery_worker.media_root / done.report.name).read_text()


def test_a_broken_upload_fails_with_its_reason(celery_worker, marketer, settings, tmp_path):
    settings.MEDIA_ROOT = celery_worker.media_root
    run = ImportRun(source_name="empty.csv", created_by=marketer, options={"event_type": "view"})
    run.file.save("empty.csv", ContentFile(b""), save=True)
    import_run.delay(run.id)
    failed = wait_for(lambda: ImportRun.objects.filter(id=run.id, status="failed").first(), timeout=60)
    assert "the file is empty" in failed.error
    # a task delivered twice does not run the import twice
    import_run.delay(run.id)
    heartbeat.delay()
    wait_for(health.last_heartbeat, timeout=30)
    assert ImportRun.objects.get(id=run.id).status == "failed"
