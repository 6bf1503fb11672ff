"""PostgreSQL and Redis restarts: the API answers 503 and recovers by itself, a send and an ingestion lose nothing.

Each test runs servers of its own (bench/private_services.py: initdb on a free port, a redis-server), never
the shared ones the rest of the suite uses, and skips where initdb, pg_ctl or redis-server are missing.
"""

import json
import os
import signal
import subprocess
import sys

import pytest
import requests

from bench.private_services import PrivatePostgres, PrivateRedis, free_port, missing, wait_port
from tests.conftest import REPO

pytestmark = pytest.mark.worker

DATABASE = "promo_outages"


@pytest.fixture
def private_servers(tmp_path):
    lacks = missing()
    if lacks:
        pytest.skip(f"no private servers here: {', '.join(lacks)} missing")
    with PrivatePostgres(tmp_path) as pg, PrivateRedis(tmp_path) as redis:
        pg.create_database(DATABASE)
        yield pg, redis


def _env(pg, redis):
    env = {key: value for key, value in os.environ.items() if key not in ("PYTEST_VERSION", "TEST_DATABASE_NAME")}
    env.update(
        DEBUG="1",
        DATABASE_URL=pg.url(DATABASE),
        REDIS_URL=redis.url(0),
        CELERY_BROKER_URL=redis.url(1),
        DB_CONN_MAX_AGE="60",  # kept connections, as in production: they must be checked before reuse
        API_RETRY_AFTER_SECONDS="2",
    )
    return env


def _manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True)


@pytest.fixture
def web(private_servers, tmp_path):
    """gunicorn on the private servers, with an integration user's token."""
    pg, redis = private_servers
    env = _env(pg, redis)
    _manage(env, "migrate", "--verbosity", "0")
    make_token = (
        "from django.contrib.auth.models import Group, User; from rest_framework.authtoken.models import Token; "
        "u = User.objects.create_user('integration'); u.groups.add(Group.objects.get(name='integration')); "
        "print(Token.objects.create(user=u).key)"
    )
    shell = [sys.executable, "manage.py", "shell", "-c", make_token]
    output = subprocess.run(shell, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
    token = output.split()[-1]  # the shell may print a line of its own first
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "promo_site.wsgi", "-w", "2", "-b", f"127.0.0.1:{port}"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_port(port, timeout=60)
        session = requests.Session()
        session.headers["Authorization"] = f"Token {token}"
        session.base = f"http://127.0.0.1:{port}/api/v1"
        yield session
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _batch(first, n=50):
    events = [
        {
            "event_id": f"e{i}",
            "customer": f"c{i % 7}",
            "item": "sku-1",
            "type": "view",
            "occurred_at": "2026-01-15T10:00:00Z",
        }
        for i in range(first, first + n)
    ]
    return {"source": "outage-test", "events": events}


def _stored(pg):
    import psycopg

    with psycopg.connect(pg.url(DATABASE)) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT client_event_id) FROM shop_event WHERE source = 'outage-test'"
        ).fetchone()
    return tuple(row)


def test_the_events_api_answers_503_while_the_database_is_down_and_reconnects_by_itself(private_servers, web):
    pg, redis = private_servers
    # given a server that has answered (its database connections are open and kept)
    assert web.post(f"{web.base}/events/", json=_batch(0)).json()["stored"] == 50
    # when PostgreSQL stops
    pg.stop("fast")
    try:
        posted = web.post(f"{web.base}/events/", json=_batch(50))
        listed = web.get(f"{web.base}/events/")
    finally:
        pg.start()
    # then both answers are 503 with Retry-After and a JSON detail, not a 500
    for response in (posted, listed):
        assert response.status_code == 503, response.text[:500]
        assert response.headers["Retry-After"] == "2"
        assert "Retry the same request" in response.json()["detail"]
    # and once it is back the same server answers without being restarted; the retried batch is stored once
    retried = web.post(f"{web.base}/events/", json=_batch(50))
    assert retried.status_code == 200, retried.text[:500]
    assert (retried.json()["stored"], retried.json()["duplicates"]) == (50, 0)
    assert web.post(f"{web.base}/events/", json=_batch(50)).json()["duplicates"] == 50
    # after a crash of PostgreSQL (immediate stop, recovery) too
    pg.restart(mode="immediate")
    assert web.post(f"{web.base}/events/", json=_batch(100)).status_code == 200
    assert _stored(pg) == (150, 150)


def _signed_in(web, pg, redis):
    """A browser session of a staff user on the same server (requests, with the login form's CSRF token)."""
    make_user = (
        "from django.contrib.auth.models import User; User.objects.create_superuser('ops', '', 'pw-0ps-long-enough')"
    )
    _manage(_env(pg, redis), "shell", "-c", make_user)
    browser, site = requests.Session(), web.base.removesuffix("/api/v1")
    browser.get(f"{site}/admin/login/")
    form = {"username": "ops", "password": "pw-0ps-long-enough", "csrfmiddlewaretoken": browser.cookies["csrftoken"]}
    signed_in = browser.post(f"{site}/admin/login/", data=form, headers={"Referer": f"{site}/admin/login/"})
    assert signed_in.status_code == 200 and "Dashboard" in signed_in.text, signed_in.text[:500]
    return browser, site


def test_the_pages_answer_503_while_the_database_is_down_and_come_back_by_themselves(private_servers, web):
    pg, redis = private_servers
    browser, site = _signed_in(web, pg, redis)
    assert browser.get(f"{site}/").status_code == 200
    # when PostgreSQL stops, the dashboard and an admin list say so with a 503 page, not Django's 500
    pg.stop("fast")
    try:
        pages = [browser.get(f"{site}/"), browser.get(f"{site}/admin/campaigns/campaign/")]
    finally:
        pg.start()
    for page in pages:
        assert page.status_code == 503, page.text[:500]
        assert page.headers["Retry-After"] == "2"
        assert "not answering at the moment" in page.text
    # and once it is back the same session sees its pages again, the server not restarted
    assert browser.get(f"{site}/").status_code == 200


def test_the_events_api_rides_out_a_redis_restart(private_servers, web):
    pg, redis = private_servers
    assert web.post(f"{web.base}/events/", json=_batch(0)).status_code == 200
    # when Redis (the throttle's counters, the broker) is down, the API says 503, not 500
    redis.stop()
    try:
        down = web.post(f"{web.base}/events/", json=_batch(50))
    finally:
        redis.start()
    assert down.status_code == 503, down.text[:500]
    assert down.headers["Retry-After"] == "2"
    # and after it restarts (kill -9, the same append-only file) the server reconnects by itself
    redis.restart()
    assert web.post(f"{web.base}/events/", json=_batch(50)).status_code == 200
    assert _stored(pg) == (100, 100)


@pytest.mark.slow
def test_kills_and_restarts_during_a_send_and_an_ingestion_lose_nothing(tmp_path):
    # bench/faults.py --quick: 600 recipients sent through 3 workers to the fake Postmark with injected 429s,
    # 500s and timeouts, 3 workers killed with SIGKILL and PostgreSQL and Redis restarted during the send,
    # then 12,000 events posted by 4 clients through gunicorn while both restart again.
    if missing():
        pytest.skip(f"no private servers here: {', '.join(missing())} missing")
    out = tmp_path / "faults.json"
    command = [sys.executable, "bench/faults.py", "--quick", "--json", str(out), "--keep", str(tmp_path / "run")]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        process.terminate()  # the bench stops its workers and servers on SIGTERM (a kill would orphan them)
        output, _ = process.communicate(timeout=120)
        pytest.fail(f"bench/faults.py --quick ran past 15 minutes:\n{output[-3000:]}")
    assert process.returncode == 0, output[-6000:]
    result = json.loads(out.read_text())
    # every recipient ended sent or failed with a reason, none was sent twice, none is recorded wrongly
    assert (result["duplicates"], result["lost"], result["stuck"]) == (0, 0, 0), result["send"]
    assert result["send"]["batch_status"] == "sent"
    assert result["send"]["sent"] + result["send"]["failed"] == result["send"]["recipients"]
    # the chaos happened: kills, and restarts of both servers
    assert result["kills"] >= 3
    assert result["restarts"]["postgres"] >= 2 and result["restarts"]["redis"] >= 2
    # the workers alive after the last restart finished the send without being restarted
    assert result["send"]["workers_reconnected"] >= 1
    # every posted event is stored exactly once; no answer was a 500; the web server reconnected
    ingest = result["ingest"]
    assert result["events_stored"] == result["events_posted"] == ingest["distinct_event_ids"]
    assert not [status for status in ingest["answers"] if status.startswith("5") and status != "503"]
    assert ingest["web_reconnected"]
