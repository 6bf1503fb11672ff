from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.shortcuts import resolve_url
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from promo_site import views
from promo_site.webhooks import anymail_webhook_urls

admin.site.site_header = "promo_site"
admin.site.site_title = "promo_site"
admin.site.index_title = "Shop data, models and campaigns"
admin.site.enable_nav_sidebar = False  # the lists need the width


def login(request, **kwargs):
    """The admin's login page, landing on the dashboard (LOGIN_REDIRECT_URL) unless asked for another page."""
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        request.GET = request.GET.copy()
        request.GET[REDIRECT_FIELD_NAME] = resolve_url(settings.LOGIN_REDIRECT_URL)
    return admin.site.login(request, **kwargs)


urlpatterns = [
    path("status/", views.status, name="status"),
    path("admin/login/", login),  # before the admin's own: the dashboard is the first page after login
    path("admin/", admin.site.urls),
    path("api/v1/", include("shop.api.urls")),
    # The schema and its docs page are for signed-in staff (they map every endpoint and field).
    path("api/v1/schema/", staff_member_required(SpectacularAPIView.as_view()), name="api-schema"),
    path("", include("campaigns.urls")),
    # The providers' tracking webhooks, e.g. /anymail/postmark/tracking/ (basic auth: ANYMAIL_WEBHOOK_SECRET;
    # without it they are all refused, promo_site/webhooks.py).
    path("anymail/", include(anymail_webhook_urls())),
    path(
        "api/v1/docs/",
        staff_member_required(SpectacularSwaggerView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
]

# A refused action (PermissionDenied anywhere) answers with the admin-styled page that says why.
handler403 = "promo_site.views.permission_denied"
