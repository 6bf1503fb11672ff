from django.urls import path

from campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("r/<str:token>/", views.click, name="click"),
    path("u/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("n/<str:token>/", views.not_interested, name="not_interested"),
]
