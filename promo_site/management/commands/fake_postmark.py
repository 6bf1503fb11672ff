import json

from django.core.management.base import BaseCommand, CommandError

from promo_site.fake_postmark import DEFAULT_TOKEN, FakePostmark


class Command(BaseCommand):
    help = (
        "Run a fake Postmark API on loopback that records what it is sent (see promo_site/fake_postmark.py). "
        "Failure injection: --config or POST /_fake/config; the outbox: /_fake/ (pages), GET /_fake/outbox (JSON)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8025)
        parser.add_argument("--token", default=DEFAULT_TOKEN, help="the server token it accepts")
        parser.add_argument("--config", default="{}", help="failure injection as JSON, e.g. '{\"p_429\": 0.1}'")

    def handle(self, *args, **options):
        try:
            config = json.loads(options["config"])
            server = FakePostmark(host=options["host"], port=options["port"], token=options["token"], **config)
        except (ValueError, TypeError, OSError) as error:
            raise CommandError(f"Cannot start the fake Postmark: {error}") from error
        self.stdout.write(f"Fake Postmark API on {server.url}. Point the app at it with:")
        self.stdout.write("  EMAIL_BACKEND=anymail.backends.postmark.EmailBackend")
        self.stdout.write(f"  ANYMAIL_POSTMARK_SERVER_TOKEN={options['token']}")
        self.stdout.write(f"  ANYMAIL_POSTMARK_API_URL={server.url}")
        self.stdout.write(f"Outbox: {server.url}_fake/ (JSON: {server.url}_fake/outbox). Ctrl-C stops.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()
