import os
import secrets
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from promo_site.management.commands.setup_demo_users import DEMO_USERS


def env_flag(value):
    return value.strip().lower() in {"1", "true", "yes", "on"}


def demo_webhook_secret(var_dir):
    """The demo's ANYMAIL_WEBHOOK_SECRET ('user:password'), made once and kept in var/ (webhooks need one)."""
    store = var_dir / "webhook-secret.txt"
    if not store.exists():
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text(f"postmark:{secrets.token_urlsafe(24)}\n")
        store.chmod(0o600)
    return store.read_text().strip()


class Command(BaseCommand):
    help = "Run the web server, a Celery worker (all queues), beat and, without a provider, a fake Postmark."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default=os.environ.get("BIND", "127.0.0.1:8000"))
        parser.add_argument("--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", 2)))

    def handle(self, *args, bind, web_workers, **options):
        bin_dir = os.path.dirname(sys.executable)
        settings.VAR_DIR.mkdir(parents=True, exist_ok=True)
        commands = {
            "web": [
                f"{bin_dir}/gunicorn",
                "promo_site.wsgi",
                "--bind",
                bind,
                "--workers",
                str(web_workers),
                "--timeout",
                "120",
                "--access-logfile",
                "-",
            ],
            "worker": [
                f"{bin_dir}/celery",
                "-A",
                "promo_site",
                "worker",
                "-Q",
                "default,ml,send",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "-n",
                "worker@%h",
            ],
            "beat": [
                f"{bin_dir}/celery",
                "-A",
                "promo_site",
                "beat",
                "--loglevel",
                "INFO",
                "--schedule",
                str(settings.CELERY_BEAT_SCHEDULE_FILENAME),
            ],
        }
        env, mail_note = self._mail(commands, bin_dir)
        mail_note += self._webhooks(env, bind)
        mail_note += self._demo(commands, env, bind)
        processes = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}
        self._banner(bind, mail_note)
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(True))
        try:
            while not stop:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with {process.returncode}; stopping everything.")
                        stop.append(True)
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        self._stop(processes)

    def _mail(self, commands, bin_dir):
        """Without a configured e-mail provider, run the fake Postmark on loopback so sending works end to end.

        The real anymail backend then talks HTTP to it; its outbox shows what would have been sent.
        """
        env = dict(os.environ)
        if os.environ.get("EMAIL_BACKEND"):
            return env, f"e-mail: {os.environ['EMAIL_BACKEND']}"
        port = os.environ.get("FAKE_POSTMARK_PORT", "8025")
        commands["mail"] = [sys.executable, str(settings.BASE_DIR / "manage.py"), "fake_postmark", "--port", port]
        env.update(
            EMAIL_BACKEND="anymail.backends.postmark.EmailBackend",
            ANYMAIL_POSTMARK_SERVER_TOKEN="POSTMARK_API_TEST",
            ANYMAIL_POSTMARK_API_URL=f"http://127.0.0.1:{port}/",
        )
        return env, f"e-mail: no provider configured, so a fake Postmark; its outbox: http://127.0.0.1:{port}/_fake/"

    def _webhooks(self, env, bind):
        """Without a configured secret the webhooks refuse everything (promo_site/webhooks.py): give the demo one."""
        if env.get("ANYMAIL_WEBHOOK_SECRET"):
            return ""
        env["ANYMAIL_WEBHOOK_SECRET"] = demo_webhook_secret(settings.VAR_DIR)
        return f"\n  webhooks: http://{env['ANYMAIL_WEBHOOK_SECRET']}@{bind}/anymail/postmark/tracking/"

    def _demo(self, commands, env, bind):
        """With the fake Postmark (no provider configured) the demo runs in demo mode, unless DEMO_MODE=0 says not:
        the fake reports deliveries, opens and clicks to our webhooks, and a simulated shop buys (simulate_shop).
        """
        if "mail" not in commands or not env_flag(env.get("DEMO_MODE", "1")):
            return ""
        env["DEMO_MODE"] = "1"
        env.setdefault("DEMO_TIME_SCALE", "1440")
        site = f"http://127.0.0.1:{bind.rsplit(':', 1)[-1]}"
        env.setdefault("SITE_URL", site)  # the messages' links, which simulated people click, lead here
        commands["mail"] += ["--webhooks", f"{site}/anymail/postmark/tracking/"]  # the secret goes by environment
        manage = str(settings.BASE_DIR / "manage.py")
        commands["shop"] = [sys.executable, manage, "simulate_shop", "--site", site]
        scale = float(env["DEMO_TIME_SCALE"])
        return (
            f"\n  demo mode: a simulated shop answers every send; windows run {scale:g}x faster "
            f"({settings.MEASUREMENT_DAYS * 1440 / scale:g} minutes of measurement). DEMO_MODE=0 turns it off."
        )

    def _stop(self, processes, grace=20):
        """Ask everything to stop; a worker still busy after `grace` seconds (a training) is killed.

        Its task is acknowledged late, so the broker keeps it; the sweepers fail a half-done training or
        import, and nothing half-written is committed (each runs in one transaction or writes at the end).
        """
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + grace
        for name, process in processes.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.stderr.write(f"{name} is still busy after {grace} s; killing it.")
                process.kill()
                process.wait()

    def _banner(self, bind, mail_note):
        mode = (
            "EMBEDDED mode: SQLite and a SQLite-backed Celery broker (no PostgreSQL/Redis found or configured)"
            if settings.EMBEDDED_MODE
            else "SERVICES mode: PostgreSQL and Redis"
        )
        store = settings.VAR_DIR / "demo-users.txt"
        users = dict(line.split(" ", 1) for line in store.read_text().splitlines()) if store.exists() else {}
        lines = [
            "",
            "=" * 72,
            f"promo_site is running in {mode}",
            f"  database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, broker: {settings.CELERY_BROKER_URL.split('://')[0]}",
            f"  open http://{bind}/  (API docs: http://{bind}/api/v1/docs/)",
            f"  {mail_note}",
            "  sign in as:",
            *[f"    {name:<9} {users.get(name, '?'):<14} {role or 'admin'}" for name, role in DEMO_USERS],
            "  Ctrl-C stops the web server, the worker, beat (and the fake Postmark and the demo shop).",
            "=" * 72,
            "",
        ]
        self.stdout.write("\n".join(lines))
