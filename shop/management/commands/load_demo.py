from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from shop.models import ImportRun

# Embedded mode writes through the ORM, which is too slow for all 1.47M transactions on first start.
EMBEDDED_HOUSEHOLDS = 300


class Command(BaseCommand):
    help = "Load the Complete Journey demo shop once (later runs do nothing)."

    def handle(self, *args, **options):
        if ImportRun.objects.filter(kind="completejourney", status=ImportRun.Status.DONE).exists():
            self.stdout.write("Demo data already loaded.")
            return
        households = EMBEDDED_HOUSEHOLDS if not settings.DB_IS_POSTGRES else None
        note = f"the first {households} households" if households else "all households"
        self.stdout.write(f"Loading the Complete Journey demo shop ({note}); this takes a minute or two...")
        # Moved to today's weeks: recency rules, the shop clock and the measurement window see a living shop.
        call_command(
            "import_data",
            "completejourney",
            households=households,
            shift_to_today=True,
            verbosity=options["verbosity"],
        )
