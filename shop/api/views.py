from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from shop.api import serializers as s
from shop.api.parsers import ShopJSONParser
from shop.api.permissions import ShopDataPermission
from shop.models import Customer, Event, Item
from shop.services.event_batches import BatchError, events_store_batch
from shop.services.upserts import customers_upsert, items_upsert

# The error answers the endpoints really give: the schema documents every answer (tests/shop/test_api_schema.py).
_UNAUTHORIZED = OpenApiResponse(s.ErrorSerializer, description="No token, or an unknown or inactive user's token.")
_THROTTLED = OpenApiResponse(
    s.ErrorSerializer, description="The token's rate limit (API_THROTTLE_RATE) is spent; see Retry-After."
)
_UNAVAILABLE = OpenApiResponse(
    s.ErrorSerializer,
    description="The database or Redis is unavailable for a moment (a restart, a failover): retry the same "
    "request after the Retry-After header's seconds. A retried event batch stores nothing twice.",
)
READ_ERRORS = {
    401: _UNAUTHORIZED,
    404: OpenApiResponse(s.ErrorSerializer, description="A page number or a cursor that is not a page."),
    429: _THROTTLED,
    503: _UNAVAILABLE,
}
WRITE_ERRORS = {
    400: OpenApiResponse(
        OpenApiTypes.OBJECT,
        description="A body the endpoint does not take: malformed JSON, a NUL character in a string, the wrong "
        "shape, too many rows (bad rows of a good batch come back in `rejected`, with a 200). "
        "`detail`, or the field names each with its messages.",
    ),
    401: _UNAUTHORIZED,
    403: OpenApiResponse(s.ErrorSerializer, description="The token's user may not write (the integration role may)."),
    415: OpenApiResponse(s.ErrorSerializer, description="A body that is not JSON (Content-Type application/json)."),
    429: _THROTTLED,
    503: _UNAVAILABLE,
}


def _list_schema(serializer):
    return extend_schema_view(get=extend_schema(responses={200: serializer(many=True), **READ_ERRORS}))


def _batch_list(data, name):
    if not isinstance(data, list):
        raise ValidationError({"detail": f"expected a JSON array of {name}"})
    if len(data) > settings.API_MAX_BATCH:
        raise ValidationError({"detail": f"at most {settings.API_MAX_BATCH} {name} per request, got {len(data)}"})
    return data


class _UpsertView(APIView):
    permission_classes = [ShopDataPermission]
    parser_classes = [ShopJSONParser]  # a batch is a JSON array: a form cannot carry one
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


@_list_schema(s.CustomerSerializer)
class CustomerListUpsert(generics.ListAPIView, _UpsertView):
    """GET: customers, paginated. POST: insert or update up to API_MAX_BATCH customers by external_id."""

    queryset = Customer.objects.all()
    serializer_class = s.CustomerSerializer
    row_serializer = s.CustomerRowSerializer
    upsert = customers_upsert
    noun = "customers"
    write_permissions = ["shop.add_customer", "shop.change_customer"]

    @extend_schema(
        request=s.CustomerRowSerializer(many=True), responses={200: s.UpsertResultSerializer, **WRITE_ERRORS}
    )
    def post(self, request):
        return super().post(request)


@_list_schema(s.ItemSerializer)
class ItemListUpsert(generics.ListAPIView, _UpsertView):
    """GET: items, paginated. POST: insert or update up to API_MAX_BATCH items by external_id."""

    queryset = Item.objects.all()
    serializer_class = s.ItemSerializer
    row_serializer = s.ItemRowSerializer
    upsert = items_upsert
    noun = "items"
    write_permissions = ["shop.add_item", "shop.change_item"]

    @extend_schema(request=s.ItemRowSerializer(many=True), responses={200: s.UpsertResultSerializer, **WRITE_ERRORS})
    def post(self, request):
        return super().post(request)


class EventCursor(CursorPagination):
    """Events page by a cursor on the id, most recently stored first: a page is one index range scan however
    many events the shop holds. A page number would count and sort the whole table for every page (over 30 s
    at 20M events, bench/run.py), and `occurred_at` has only a BRIN index, which cannot give an order."""

    ordering = "-id"
    page_size = 100


@_list_schema(s.EventSerializer)
class EventListCreate(generics.ListAPIView):
    """GET: events, most recently stored first, by pages of 100 behind a `next` cursor; filterable by
    ?customer=<external id>. POST: a batch of events."""

    serializer_class = s.EventSerializer
    pagination_class = EventCursor
    permission_classes = [ShopDataPermission]
    parser_classes = [ShopJSONParser]
    write_permissions = ["shop.add_event"]

    def get_queryset(self):
        events = Event.objects.select_related("customer", "item")
        customer = self.request.query_params.get("customer")
        if customer and "\x00" in customer:
            return events.none()  # no external id has one (PostgreSQL cannot even compare it)
        return events.filter(customer__external_id=customer) if customer else events

    @extend_schema(request=s.EventBatchSerializer, responses={200: s.EventBatchResultSerializer, **WRITE_ERRORS})
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
