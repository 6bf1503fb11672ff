import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from promo_site.roles import roles_sync
from tests.factories import UserFactory

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
ARTIFACTS = REPO / "test-artifacts"


def shared_file(relative):
    """A file of ../shared/data, or a skip when this checkout has none (CI has it)."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} is not here (a clone without ../shared)")
    return path


_worker_running = []  # the session's worker, once a test has started it
SESSION_WORKER = f"test-{os.getpid()}"


def _transactional(request):
    marker = request.node.get_closest_marker("django_db")
    if marker is not None and (marker.kwargs.get("transaction") or (marker.args and marker.args[0])):
        return True
    return bool({"transactional_db", "live_server"} & set(request.fixturenames))


@pytest.fixture(autouse=True)
def _worker_idle_before_flush(request):
    """After a test whose writes were committed, let the session's worker finish before the tables are emptied.

    Committed events queue attribution (shop.signals.events_stored), batches queue sends: a task the worker
    is still running when pytest-django truncates the tables deadlocks with the TRUNCATE. Tasks still
    waiting are purged (their rows are about to go); a running one is waited for. This teardown runs
    before the flush: pytest-django's own autouse fixture is set up first, so it is torn down last.
    """
    yield
    if not _worker_running or not _transactional(request):
        return
    from promo_site.celery import app

    app.control.purge()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        active = app.control.inspect(timeout=0.5).active() or {}
        if not any(active.values()):
            return
        time.sleep(0.2)


@pytest.fixture(autouse=True)
def _clean_cache():
    # Throttle counters and heartbeats live in the cache: every test starts from none.
    cache.clear()
    yield


# --- the cast: named users with their roles ---------------------------------


@pytest.fixture
def roles(db):
    return roles_sync()


@pytest.fixture
def marketer(roles):
    user = UserFactory(username="marketer")
    user.groups.add(roles["marketer"])
    return user


@pytest.fixture
def approver(roles):
    user = UserFactory(username="approver")
    user.groups.add(roles["approver"])
    return user


@pytest.fixture
def analyst(roles):
    user = UserFactory(username="analyst")
    user.groups.add(roles["analyst"])
    return user


@pytest.fixture
def integration(roles):
    """The shop's system that sends customers, items and events through the API (not a person: no staff)."""
    user = UserFactory(username="integration", is_staff=False)
    user.groups.add(roles["integration"])
    return user


@pytest.fixture
def outsider(db):
    return UserFactory(username="outsider", is_staff=False)


@pytest.fixture
def api_token(integration):
    return Token.objects.create(user=integration)


@pytest.fixture
def api(api_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token.key}")
    return client


# --- a fake Postmark API on loopback ---------------------------------------------


@pytest.fixture(scope="session")
def fake_postmark():
    """promo_site/fake_postmark.py on 127.0.0.1, for the session: the worker sends to it too."""
    from promo_site.fake_postmark import FakePostmark

    server = FakePostmark(host="127.0.0.1", port=0).start()
    yield server
    server.stop()


# --- a real Celery worker process ---------------------------------------------


def _database_url(db):
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def worker_env(fake_postmark, media_root, **overrides):
    """The environment of a worker process on the test database, sending through anymail to the fake Postmark."""
    from django.db import connection

    return dict(
        os.environ,
        DATABASE_URL=_database_url(connection.settings_dict),
        DB_CONN_MAX_AGE="0",
        MEDIA_ROOT=str(media_root),
        # The worker sends through anymail's real Postmark backend to the fake server.
        EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
        ANYMAIL_POSTMARK_SERVER_TOKEN=fake_postmark.token,
        ANYMAIL_POSTMARK_API_URL=fake_postmark.url,
        # Small chunks, so a test batch of tens of messages takes several provider calls, and quick retries.
        SEND_CHUNK_SIZE="20",
        SEND_RETRY_BASE_SECONDS="0.2",
        # A killed generation is taken over in seconds, not minutes.
        GENERATION_TAKEOVER_SECONDS="6",
        **overrides,
    )


def worker_node(prefix):
    """The full node name of the running worker whose name starts with `prefix`, or None."""
    from promo_site.celery import app

    replies = app.control.ping(timeout=1.0) or []
    return next((name for reply in replies for name in reply if name.startswith(prefix)), None)


def worker_start(*, env, name, log_name):
    """Start `celery worker` on every queue as node `name`@host; return the process once it answers a ping."""
    ARTIFACTS.mkdir(exist_ok=True)
    log = open(ARTIFACTS / log_name, "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "promo_site", "worker", "-Q", "default,ml,send",
         "--concurrency", "1", "--loglevel", "INFO", "-n", f"{name}@%h"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    process.log = log
    deadline = time.monotonic() + 90
    while not worker_node(f"{name}@"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the Celery worker did not start; see {log.name}")
    return process


def worker_stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
    process.log.close()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, tmp_path_factory, fake_postmark):
    """A real `celery worker` process on the test database and the tests' own Redis broker."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("worker tests need PostgreSQL (the worker is another process)")
    from promo_site.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()  # tasks left over from an earlier, interrupted run
    media_root = tmp_path_factory.mktemp("worker-media")
    process = worker_start(env=worker_env(fake_postmark, media_root), name=SESSION_WORKER, log_name="celery-worker.log")
    process.media_root = media_root  # tests that share files with the worker point MEDIA_ROOT here
    _worker_running.append(process)
    yield process
    _worker_running.clear()
    worker_stop(process)


def wait_for(predicate, timeout=60, interval=0.2):
    """Poll until predicate() is truthy; return its value or fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {predicate.__name__}")
