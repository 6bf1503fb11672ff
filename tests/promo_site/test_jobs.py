"""The long-job lifecycle (promo_site/jobs.py) as each kind uses it: imports, model and uplift trainings."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.files.base import ContentFile
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import UpliftModel
from campaigns.services import uplift_targeting
from campaigns.services.uplift_targeting import UPLIFT_TRAINING_JOB, uplift_model_train
from campaigns.tasks import sweep_stale_uplift_trainings
from promo_site.celery import app
from recommender import services as registry
from recommender.models import ModelEvent, ModelVersion
from recommender.services import TRAINING_JOB, modelversion_train
from shop.models import Event, ImportRun
from shop.services import event_store
from shop.services.imports import IMPORT_JOB, import_run_execute

pytestmark = pytest.mark.django_db

JOBS = {
    "import": (IMPORT_JOB, lambda **kw: ImportRun.objects.create(source_name="events.csv", **kw)),
    "model version": (TRAINING_JOB, lambda **kw: ModelVersion.objects.create(algorithm="pop", **kw)),
    "uplift model": (UPLIFT_TRAINING_JOB, lambda **kw: UpliftModel.objects.create(**kw)),
}
KINDS = pytest.mark.parametrize("kind", list(JOBS))


def raising(error):
    def broken(*args, **kwargs):
        raise error

    return broken


def in_another_connection(work):
    def run():
        try:
            work()
        finally:
            connection.close()  # the thread's own connection

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def queued_upload(settings, tmp_path, text=b"customer,item,occurred_at\nc1,i1,2024-01-01\nc2,i2,2024-01-02\n"):
    settings.MEDIA_ROOT = tmp_path
    run = ImportRun(source_name="upload.csv", options={"event_type": "view"})
    run.file.save("upload.csv", ContentFile(text), save=True)
    return run


# --- an unexpected error is recorded on the job, at once, with its message -----------------------


def test_it_fails_an_import_at_once_with_the_error_it_met(settings, tmp_path, monkeypatch):
    # given an upload whose write fails after its rows were staged
    run = queued_upload(settings, tmp_path)
    monkeypatch.setattr(type(event_store.event_writer()), "finish", raising(OSError("disk full")))
    # when the worker runs it
    import_run_execute(run_id=run.id)
    # then it is failed now, with the error's type and message, and nothing was stored
    run.refresh_from_db()
    assert (run.status, run.error) == (ImportRun.Status.FAILED, "OSError: disk full")
    assert run.finished_at is not None and Event.objects.count() == 0


def test_it_fails_an_unreadable_import_with_the_reason_alone(settings, tmp_path):
    run = queued_upload(settings, tmp_path, text=b"")
    import_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert run.status == ImportRun.Status.FAILED and "the file is empty" in run.error
    assert not run.error.startswith("ImportFileError")


def test_it_finishes_an_import_with_its_counts_and_last_report(settings, tmp_path):
    run = queued_upload(settings, tmp_path)
    import_run_execute(run_id=run.id)
    run.refresh_from_db()
    assert (run.status, run.rows_total, run.rows_stored, run.error) == (ImportRun.Status.DONE, 2, 2, "")
    assert run.progress == {"rows_done": 2, "rows_total": 2} and run.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_an_import_swept_before_its_first_chunk_stores_nothing(settings, tmp_path, monkeypatch):
    # given an import that the sweeper (another connection) fails before its first chunk is written
    from shop.services import imports

    run = queued_upload(settings, tmp_path)
    real_import = imports.events_import_file

    def swept_first(**kwargs):
        in_another_connection(
            lambda: ImportRun.objects.filter(id=run.id).update(status=ImportRun.Status.FAILED, error="swept")
        )
        return real_import(**kwargs)

    monkeypatch.setattr(imports, "events_import_file", swept_first)
    # when it runs, then it stops at its first report, its rows are rolled back and the sweeper's message stays
    import_run_execute(run_id=run.id)
    assert Event.objects.count() == 0
    assert ImportRun.objects.values_list("status", "error").get(id=run.id) == ("failed", "swept")


def test_it_fails_a_model_training_with_the_error_and_keeps_the_active_version(monkeypatch):
    # given an active version, and a training that runs out of memory
    active = ModelVersion.objects.create(algorithm="pop", status=ModelVersion.Status.ACTIVE)
    monkeypatch.setattr(registry, "_train", raising(MemoryError("Unable to allocate")))
    # when it is trained
    failed = modelversion_train(version_id=ModelVersion.objects.create(algorithm="deep").id)
    # then it is failed with the error's type and message, audited, and the active version still serves
    assert (failed.status, failed.error) == (ModelVersion.Status.FAILED, "MemoryError: Unable to allocate")
    assert list(ModelEvent.objects.filter(version=failed).values_list("action", "note")) == [
        ("failed", "MemoryError: Unable to allocate")
    ]
    assert ModelVersion.objects.active().get() == active


def test_it_fails_an_uplift_training_with_the_error(monkeypatch):
    monkeypatch.setattr(uplift_targeting, "uplift_training_set", raising(KeyError("demo:age")))
    failed = uplift_model_train(model_id=UpliftModel.objects.create().id)
    assert (failed.status, failed.error) == (UpliftModel.Status.FAILED, "KeyError: 'demo:age'")
    assert failed.started_at is not None and failed.finished_at is not None


def test_it_re_raises_when_asked_after_recording_the_error():
    job = ModelVersion.objects.create(algorithm="pop")
    TRAINING_JOB.claim(job.id)
    with pytest.raises(LookupError), TRAINING_JOB.failures_recorded(job.id, reraise=True, progress={"stage": "x"}):
        raise LookupError("no such thing")
    failed = ModelVersion.objects.get(id=job.id)
    assert (failed.error, failed.progress) == ("LookupError: no such thing", {"stage": "x"})


# --- claims ------------------------------------------------------------------------------------------


@KINDS
def test_it_gives_a_job_to_one_claim_only(kind):
    lifecycle, make = JOBS[kind]
    job = make()
    token = lifecycle.claim(job.id, progress={"stage": "starting"})
    assert token and lifecycle.claim(job.id) == ""  # a redelivered task, or a second worker
    job.refresh_from_db()
    assert (job.status, job.progress, job.worker) == (lifecycle.running, {"stage": "starting"}, token)
    assert job.started_at is not None and job.heartbeat_at == job.started_at


def test_it_runs_a_queued_import_once(settings, tmp_path):
    run = queued_upload(settings, tmp_path)
    import_run_execute(run_id=run.id)
    import_run_execute(run_id=run.id)
    assert Event.objects.count() == 2


@KINDS
def test_it_writes_nothing_on_a_job_that_is_no_longer_running(kind):
    lifecycle, make = JOBS[kind]
    job = make(status=lifecycle.failed, error="swept")
    assert not lifecycle.progress(job.id, {"stage": "late"})
    assert not lifecycle.finish(job.id)
    assert not lifecycle.fail(job.id, RuntimeError("late"))
    job.refresh_from_db()
    assert (job.status, job.error, job.progress) == (lifecycle.failed, "swept", {})


# --- the sweeper ---------------------------------------------------------------------------------------


@KINDS
def test_it_sweeps_a_silent_running_job_and_leaves_a_fresh_one(kind):
    # given two running jobs: one whose worker last reported longer ago than the kind allows, one just now
    lifecycle, make = JOBS[kind]
    long_ago = timezone.now() - lifecycle.silent_after - timedelta(minutes=1)
    silent = make(status=lifecycle.running, started_at=long_ago - timedelta(hours=1), heartbeat_at=long_ago)
    fresh = make(status=lifecycle.running, started_at=long_ago, heartbeat_at=timezone.now())
    # when the sweeper runs
    assert lifecycle.sweep() == [silent.id]
    # then the silent one is failed with a message that says its worker stopped; the fresh one runs on
    silent.refresh_from_db(), fresh.refresh_from_db()
    assert silent.status == lifecycle.failed and silent.error.startswith("The worker stopped")
    assert silent.finished_at is not None
    assert fresh.status == lifecycle.running


def test_it_says_what_a_lost_import_and_a_lost_training_mean():
    assert IMPORT_JOB.lost_message.endswith(
        "no report from it for 15 minutes. Nothing was stored: an import is one transaction."
    )
    assert TRAINING_JOB.lost_message.endswith("The active version keeps serving.")


def test_it_audits_a_swept_model_training():
    long_ago = timezone.now() - timedelta(hours=2)
    version = ModelVersion.objects.create(algorithm="deep", status=ModelVersion.Status.TRAINING, started_at=long_ago)
    registry.modelversion_sweep_stale()
    assert ModelEvent.objects.get(version=version).note == TRAINING_JOB.lost_message


def test_it_sweeps_uplift_trainings_on_beat():
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    entries = [entry for entry in schedule.values() if entry["task"] == "campaigns.tasks.sweep_stale_uplift_trainings"]
    assert len(entries) == 1 and "campaigns.tasks.sweep_stale_uplift_trainings" in app.tasks
    # and the task sweeps
    long_ago = timezone.now() - UPLIFT_TRAINING_JOB.silent_after - timedelta(minutes=1)
    stuck = UpliftModel.objects.create(status=UpliftModel.Status.TRAINING, started_at=long_ago)
    sweep_stale_uplift_trainings()
    assert UpliftModel.objects.get(id=stuck.id).status == UpliftModel.Status.FAILED


@pytest.mark.django_db(transaction=True)
def test_it_leaves_alone_an_import_whose_worker_holds_its_row():
    # given a running import silent for an hour as others see it, whose worker is inside its transaction
    # (an import writes its progress there, holding the row's lock until it commits)
    long_ago = timezone.now() - timedelta(hours=1)
    run = ImportRun.objects.create(source_name="big.csv", status=ImportRun.Status.RUNNING, started_at=long_ago)
    locked, release = threading.Event(), threading.Event()

    def worker():
        try:
            with transaction.atomic():
                IMPORT_JOB.progress(run.id, {"rows_done": 100_000})
                locked.set()
                release.wait(30)
        finally:
            connection.close()  # this thread's own connection

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert locked.wait(30)
        # when the sweeper runs, then it passes the import by
        assert IMPORT_JOB.sweep() == []
    finally:
        release.set()
        thread.join()
    assert ImportRun.objects.get(id=run.id).status == ImportRun.Status.RUNNING
    # and once the worker is gone without a word for long enough, the next sweep fails it
    ImportRun.objects.filter(id=run.id).update(heartbeat_at=long_ago)
    assert IMPORT_JOB.sweep() == [run.id]
