import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo_shop.simulator import Background, shop_tick
from demo_shop.transport import HttpTransport, PostError, demo_shop_token
from promo_site.demo import demo_mode, time_scale


class Command(BaseCommand):
    help = (
        "Run the demo's simulated shop (demo_shop/simulator.py): after each sent batch its customers buy, "
        "treated ones with a true lift the simulator records, and everyone else keeps shopping; all through "
        "the events API with the demo shop's integration token. DEMO_MODE=1 with the fake Postmark only."
    )

    def add_arguments(self, parser):
        parser.add_argument("--site", default=settings.SITE_URL, help="where the product's API answers")
        parser.add_argument("--tick", type=float, default=5.0, help="seconds between two turns")
        parser.add_argument("--once", action="store_true", help="one turn (covering the last --tick seconds)")
        parser.add_argument("--seed", default="demo-shop", help="seeds everyone else's shopping")

    def handle(self, *args, site, tick, once, seed, **options):
        try:
            if not demo_mode():
                raise CommandError(
                    "simulate_shop runs in demo mode only: set DEMO_MODE=1 with the fake Postmark on loopback "
                    "(`make run` does both when no e-mail provider is configured)."
                )
        except ImproperlyConfigured as refusal:
            raise CommandError(str(refusal)) from refusal
        transport = HttpTransport(site, demo_shop_token())
        background = Background(seed=seed, scale=time_scale())
        self.stdout.write(f"Demo shop: posting to {transport.url}, time scale {time_scale():g}.")
        since = timezone.now() - timezone.timedelta(seconds=tick)
        while True:
            now = timezone.now()
            try:
                done = shop_tick(transport=transport, background=background, since=since, now=now)
                since = now
                if any(done.values()):
                    self.stdout.write(
                        f"{now:%H:%M:%S} planned {done['planned']} batch(es), posted {done['posted']} "
                        f"purchase(s) after messages and {done['background']} other purchase(s)"
                    )
            except (PostError, OSError) as error:  # the site is starting or restarting: the next turn retries
                self.stderr.write(f"{now:%H:%M:%S} the shop could not post: {error}")
            if once:
                return
            time.sleep(tick)
