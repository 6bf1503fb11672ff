from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.api import serializers as s
from shop.api.permissions import ShopDataPermission
from shop.models import Customer, Event, Item
from shop.services.event_batches import BatchError, events_store_batch
from shop.services.upserts import customers_upsert, items_upsert


def _batch_list(data, name):
    if not isinstance(data, list):
        raise ValidationError({"detail": f"expected a JSON array of {name}"})
    if len(data) > settings.API_MAX_BATCH:
        raise ValidationError({"detail": f"at most {settings.API_MAX_BATCH} {name} per request, got {len(data)}"})
    return data


class _UpsertView(APIView):
    permission_classes = [ShopDataPermission]
    row_serializer = None
    upsert = None
    noun = None

    def post(self, request):
        rows = _batch_list(request.data, self.noun)
        valid, rejected = [], []
        for index, row in enumerate(rows):
            serializer = self.row_serializer(data=row)
            if serializer.is_valid():
                valid.append(serializer.validated_data)
            else:
                external_id = row.get("external_id") if isinstance(row, dict) else None
                rejected.append({"row": index, "external_id": external_id, "errors": serializer.errors})
        created, updated = type(self).upsert(rows=valid) if valid else (0, 0)
        return Response({"created": created, "updated": updated, "rejected": rejected})


class CustomerListUpsert(generics.ListAPIView, _UpsertView):
    """GET: customers, paginated. POST: insert or update up to API_MAX_BATCH customers by external_id."""

    queryset = Customer.objects.all()
    serializer_class = s.CustomerSerializer
    row_serializer = s.CustomerRowSerializer
    upsert = customers_upsert
    noun = "customers"
    write_permissions = ["shop.add_customer", "shop.change_customer"]

    @extend_schema(request=s.CustomerRowSerializer(many=True), responses=s.UpsertResultSerializer)
    def post(self, request):
        return super().post(request)


class ItemListUpsert(generics.ListAPIView, _UpsertView):
    """GET: items, paginated. POST: insert or update up to API_MAX_BATCH items by external_id."""

    queryset = Item.objects.all()
    serializer_class = s.ItemSerializer
    row_serializer = s.ItemRowSerializer
    upsert = items_upsert
    noun = "items"
    write_permissions = ["shop.add_item", "shop.change_item"]

    @extend_schema(request=s.ItemRowSerializer(many=True), responses=s.UpsertResultSerializer)
    def post(self, request):
        return super().post(request)


class EventListCreate(generics.ListAPIView):
    """GET: events, newest first, filterable by ?customer=<external id>. POST: a batch of events."""

    serializer_class = s.EventSerializer
    permission_classes = [ShopDataPermission]
    write_permissions = ["shop.add_event"]

    def get_queryset(self):
        events = Event.objects.select_related("customer", "item").order_by("-occurred_at", "-id")
        customer = self.request.query_params.get("customer")
        return events.filter(customer__external_id=customer) if customer else events

    @extend_schema(request=s.EventBatchSerializer, responses={200: s.EventBatchResultSerializer})
    def post(self, request):
        data = request.data
        if not isinstance(data, dict):
            raise ValidationError({"detail": "expected a JSON object with 'source' and 'events'"})
        header = s.EventBatchSerializer(data={**data, "events": []})
        header.is_valid(raise_exception=True)
        events = _batch_list(data.get("events"), "events")
        try:
            result = events_store_batch(
                source=header.validated_data["source"], events=events, on_unknown=header.validated_data["on_unknown"]
            )
        except BatchError as exc:
            raise ValidationError({"events": [str(exc)]}) from exc
        return Response(result.__dict__, status=status.HTTP_200_OK)
