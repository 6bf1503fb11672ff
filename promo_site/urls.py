from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from promo_site import views

admin.site.site_header = "promo_site"
admin.site.site_title = "promo_site"
admin.site.index_title = "Shop data, models and campaigns"
admin.site.enable_nav_sidebar = False  # the lists need the width

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("status/", views.status, name="status"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("shop.api.urls")),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("", include("campaigns.urls")),
    # The providers' tracking webhooks, e.g. /anymail/postmark/tracking/ (basic auth: ANYMAIL_WEBHOOK_SECRET).
    path("anymail/", include("anymail.urls")),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
