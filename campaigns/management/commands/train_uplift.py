from django.core.management.base import BaseCommand, CommandError

from campaigns.models import UpliftModel


class Command(BaseCommand):
    help = (
        "Train the uplift model on past batches and their holdouts: queued on the `ml` queue, "
        "or here and now with --now. Campaigns with uplift targeting use the newest ready model."
    )

    def add_arguments(self, parser):
        parser.add_argument("--now", action="store_true", help="train in this process instead of a worker")

    def handle(self, *args, now, **options):
        from campaigns.services.uplift_targeting import uplift_model_request, uplift_model_train

        if not now:
            model_id = uplift_model_request()
            self.stdout.write(f"Uplift model {model_id} queued on the ml queue.")
            return
        model = UpliftModel.objects.create()
        uplift_model_train(model_id=model.id)
        model.refresh_from_db()
        if model.status != UpliftModel.Status.READY:
            raise CommandError(model.error)
        best = model.scores[model.chosen]
        self.stdout.write(
            f"Uplift model {model.id}: {model.chosen} (validation Qini {best['qini']:.4f}, "
            f"uplift@30% {best['uplift_at_k']:.4f}) on {model.n_treated:,} treated and "
            f"{model.n_control:,} holdout customers of batches {model.batches}."
        )
