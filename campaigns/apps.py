from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "campaigns"

    def ready(self):
        from campaigns import checks, signals  # noqa: F401  (registers the checks, connects the receivers)
