import json
import os

from django.core.management.base import BaseCommand, CommandError

from promo_site.fake_postmark import DEFAULT_TOKEN, FakePostmark
from promo_site.fake_postmark_webhooks import WebhookSender


class Command(BaseCommand):
    help = (
        "Run a fake Postmark API on loopback that records what it is sent (see promo_site/fake_postmark.py). "
        "Failure injection: --config or POST /_fake/config; the outbox: /_fake/ (pages), GET /_fake/outbox (JSON). "
        "With --webhooks, it reports deliveries, bounces, complaints, opens and clicks to that tracking URL (the demo)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8025)
        parser.add_argument("--token", default=DEFAULT_TOKEN, help="the server token it accepts")
        parser.add_argument("--config", default="{}", help="failure injection as JSON, e.g. '{\"p_429\": 0.1}'")
        parser.add_argument(
            "--webhooks",
            default="",
            help="the product's Postmark tracking URL (…/anymail/postmark/tracking/); the basic-auth secret is "
            "read from ANYMAIL_WEBHOOK_SECRET, so it never shows in the process list",
        )
        parser.add_argument(
            "--time-scale",
            type=float,
            default=float(os.environ.get("DEMO_TIME_SCALE", "1")),
            help="how much faster than life opens and clicks come (default: DEMO_TIME_SCALE, else 1)",
        )
        parser.add_argument("--seed", default=None, help="seeds the webhooks' draws")

    def handle(self, *args, **options):
        try:
            config = json.loads(options["config"])
            webhooks = self._webhooks(options)
            server = FakePostmark(
                host=options["host"], port=options["port"], token=options["token"], webhooks=webhooks, **config
            )
        except (ValueError, TypeError, OSError) as error:
            raise CommandError(f"Cannot start the fake Postmark: {error}") from error
        self.stdout.write(f"Fake Postmark API on {server.url}. Point the app at it with:")
        self.stdout.write("  EMAIL_BACKEND=anymail.backends.postmark.EmailBackend")
        self.stdout.write(f"  ANYMAIL_POSTMARK_SERVER_TOKEN={options['token']}")
        self.stdout.write(f"  ANYMAIL_POSTMARK_API_URL={server.url}")
        if webhooks:
            self.stdout.write(f"Webhooks to {webhooks.url}, time scale {webhooks.time_scale:g}.")
        self.stdout.write(f"Outbox: {server.url}_fake/ (JSON: {server.url}_fake/outbox). Ctrl-C stops.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()

    def _webhooks(self, options):
        if not options["webhooks"]:
            return None
        secret = os.environ.get("ANYMAIL_WEBHOOK_SECRET", "")
        if ":" not in secret:
            raise ValueError("--webhooks needs ANYMAIL_WEBHOOK_SECRET ('user:password') in the environment")
        return WebhookSender(
            url=options["webhooks"], auth=secret, time_scale=options["time_scale"], seed=options["seed"]
        )
