from django.urls import path

from campaigns import views
from campaigns.dashboard import views as dashboard

app_name = "campaigns"
urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("dashboard.csv", dashboard.dashboard_csv, name="dashboard_csv"),
    path("r/<str:token>/", views.click, name="click"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("n/<str:token>/", views.not_interested, name="not_interested"),
    path("test-link/", views.test_link, name="test_link"),
    path("demo-shop/items/<str:external_id>/", views.demo_item, name="demo_item"),
]
