import os
import subprocess
import sys

import pytest
from django.test import RequestFactory
from django.views.debug import get_default_exception_reporter_filter

from promo_site.checks import email_backend_check, site_url_check
from tests.conftest import REPO

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "production-secret-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "promo.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/promo_site",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ANYMAIL_WEBHOOK_SECRET": "postmark:webhook-secret-with-enough-entropy-0123456789",
    "EMAIL_BACKEND": "anymail.backends.postmark.EmailBackend",
    "SITE_URL": "https://promo.example.com",
}


def manage(*args, env=None):
    leaks = {"PYTEST_VERSION", "DJANGO_ALLOW_ASYNC_UNSAFE"}  # set by the test run, never in production
    environment = {k: v for k, v in os.environ.items() if k not in PRODUCTION and k not in leaks}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=environment, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_the_deploy_check():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_without_debug_set_it_runs_safe():
    # given: production's settings but DEBUG, which nobody set
    env = {k: v for k, v in PRODUCTION.items() if k != "DEBUG"}
    # when
    result = manage("shell", "-c", "from django.conf import settings; print('DEBUG', settings.DEBUG)", env=env)
    without_key = manage("check", env={k: v for k, v in env.items() if k != "SECRET_KEY"})
    # then
    assert "DEBUG False" in result.stdout, result.stderr
    assert without_key.returncode != 0 and "SECRET_KEY must be set" in without_key.stderr


def test_debug_pages_hide_the_passwords_in_urls(settings):
    settings.DATABASE_URL = "postgres://promo:db-s3cret@db.internal:5432/promo_site"
    settings.CACHES = {"default": {"BACKEND": "x", "LOCATION": "redis://:redis-s3cret@cache:6379/0"}}
    request = RequestFactory().get("/", CELERY_BROKER_URL="redis://user:broker-s3cret@cache:6379/1")
    reporter_filter = get_default_exception_reporter_filter()

    shown = str(reporter_filter.get_safe_settings()) + str(reporter_filter.get_safe_request_meta(request))

    assert "s3cret" not in shown
    assert "postgres://promo:********************@db.internal:5432/promo_site" in shown
    assert settings.SITE_URL in shown  # URLs without a password are left alone


@pytest.mark.parametrize(
    "email_backend, site_url, ids",
    [
        ("django.core.mail.backends.console.EmailBackend", "http://127.0.0.1:8000", ["W001", "W002"]),
        ("anymail.backends.postmark.EmailBackend", "http://promo.example.com", ["W002"]),
        ("anymail.backends.postmark.EmailBackend", "https://promo.example.com", []),
    ],
)
def test_the_deploy_check_flags_a_console_backend_and_a_development_site_url(settings, email_backend, site_url, ids):
    settings.EMAIL_BACKEND, settings.SITE_URL = email_backend, site_url
    found = email_backend_check(None) + site_url_check(None)
    assert [w.id for w in found] == [f"promo_site.{id_}" for id_ in ids]


def test_with_nothing_reachable_it_falls_back_to_embedded_mode(tmp_path):
    # Ports where nothing listens stand in for a machine without PostgreSQL and Redis.
    code = (
        "import promo_site.settings as s;"
        "print(s.EMBEDDED_MODE, s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL.split(':')[0])"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(PROMO_VAR_DIR=str(tmp_path), PROMO_PROBE_HOST="127.0.0.2")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["True", "django.db.backends.sqlite3", "sqla+sqlite"], result.stderr


def test_embedded_mode_migrates_and_runs_a_task_through_the_sqlite_broker(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(PROMO_VAR_DIR=str(tmp_path), PROMO_PROBE_HOST="127.0.0.2")
    assert manage("ensure_database", env=env).returncode == 0
    migrate = manage("migrate", "--noinput", env=env)
    assert migrate.returncode == 0, migrate.stderr
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "promo_site",
            "worker",
            "-Q",
            "default",
            "--concurrency",
            "1",
            "--pool",
            "solo",
            "-n",
            "embedded@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        code = (
            "import django; django.setup();"
            "from promo_site.tasks import heartbeat; from promo_site import health; import time;"
            "heartbeat.delay();"
            "deadline = time.time() + 60\n"
            "while not health.last_heartbeat() and time.time() < deadline: time.sleep(0.5)\n"
            "print('beat', health.last_heartbeat() is not None)"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=dict(env, DJANGO_SETTINGS_MODULE="promo_site.settings"),
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert "beat True" in result.stdout, result.stderr
    finally:
        worker.terminate()
        worker.wait(timeout=30)
