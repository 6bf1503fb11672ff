from django.apps import AppConfig


class DemoShopConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "demo_shop"
    verbose_name = "Demo shop (simulated customers)"
