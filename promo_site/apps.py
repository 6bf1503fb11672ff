from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PromoSiteConfig(AppConfig):
    name = "promo_site"

    def ready(self):
        from promo_site import checks  # noqa: F401  (registers the deploy checks)
        from promo_site.roles import roles_sync

        # Groups and their permissions follow the code: after every migrate they are brought in line.
        post_migrate.connect(lambda **kwargs: roles_sync(), dispatch_uid="promo_site.roles_sync", weak=False)
