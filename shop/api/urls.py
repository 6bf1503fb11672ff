from django.urls import path

from shop.api import views

urlpatterns = [
    path("customers/", views.CustomerListUpsert.as_view(), name="api-customers"),
    path("items/", views.ItemListUpsert.as_view(), name="api-items"),
    path("events/", views.EventListCreate.as_view(), name="api-events"),
]
