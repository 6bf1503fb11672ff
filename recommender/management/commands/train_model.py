from django.core.management.base import BaseCommand, CommandError

from recommender.models import Algorithm, ModelVersion
from recommender.services import modelversion_request


class Command(BaseCommand):
    help = "Queue the training of a model version on the `ml` queue (a worker trains it)."

    def add_arguments(self, parser):
        parser.add_argument("--algorithm", choices=Algorithm.values, default="deep")
        parser.add_argument(
            "--first-run",
            action="store_true",
            help="only when no version exists: a quick transitions baseline, TIFU-KNN, then the deep model",
        )

    def handle(self, *args, algorithm, first_run, **options):
        if first_run:
            if ModelVersion.objects.exists():
                self.stdout.write("Model versions exist already; nothing queued.")
                return
            # Each activates itself unless it validates worse than the active one: on a shop with orders
            # (next-basket recall@10 at V) TIFU-KNN usually stays (docs/benchmarks.md).
            for name in ("transitions", "tifuknn", "deep"):
                version_id = modelversion_request(algorithm=name, reason="first run")
                self.stdout.write(f"Queued #{version_id} ({name}); it activates itself when trained.")
            return
        if not Algorithm.values:
            raise CommandError("no algorithms")
        version_id = modelversion_request(algorithm=algorithm)
        self.stdout.write(f"Queued #{version_id} ({algorithm}). Activate it in the admin when it is ready.")
