import os
import subprocess
import sys

from tests.conftest import REPO

PRODUCTION = {
    "DEBUG": "0",
    "SECRET_KEY": "x" * 20 + "production-secret-with-enough-entropy-0123456789",
    "ALLOWED_HOSTS": "promo.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/promo_site",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "ANYMAIL_WEBHOOK_SECRET": "postmark:webhook-secret-with-enough-entropy-0123456789",
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
