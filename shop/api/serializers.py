from django.conf import settings
from django.utils import timezone
from rest_framework import serializers

from shop.models import Customer, Event, EventType, Item


class _UpsertRowSerializer(serializers.ModelSerializer):
    # An upsert row names an existing or a new record: no uniqueness check on the id.
    external_id = serializers.CharField(max_length=64)


class CustomerRowSerializer(_UpsertRowSerializer):
    class Meta:
        model = Customer
        fields = [
            "external_id",
            "email",
            "name",
            "attributes",
            "demographics",
            "marketing_consent",
            "consent_at",
            "consent_source",
            "unsubscribed_at",
            "suppressed",
            "suppressed_reason",
            "time_zone",
        ]

    def validate(self, data):
        if data.get("marketing_consent") and not data.get("consent_at"):
            data["consent_at"] = timezone.now()
        return data


class ItemRowSerializer(_UpsertRowSerializer):
    class Meta:
        model = Item
        fields = [
            "external_id",
            "title",
            "category_path",
            "brand",
            "price",
            "cost",
            "active",
            "in_stock",
            "image_url",
            "attributes",
        ]


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        exclude = ["id"]


class ItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = Item
        exclude = ["id"]


class EventSerializer(serializers.ModelSerializer):
    customer = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    item = serializers.SlugRelatedField(slug_field="external_id", read_only=True)
    event_id = serializers.CharField(source="client_event_id")
    order = serializers.CharField(source="order_id", allow_null=True)

    class Meta:
        model = Event
        fields = [
            "event_id",
            "source",
            "order",
            "customer",
            "item",
            "type",
            "quantity",
            "value",
            "discount",
            "occurred_at",
            "attributes",
            "received_at",
        ]


class UpsertResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    rejected = serializers.ListField(child=serializers.DictField(), help_text="[{row, external_id, errors}]")


# --- Schema-only descriptions of the events batch (validation is vectorised, see shop.services.event_rows) ---


class EventRowSerializer(serializers.Serializer):
    event_id = serializers.CharField(
        max_length=128, help_text="Unique per source; a retry with the same id is a duplicate."
    )
    customer = serializers.CharField(help_text="The customer's external id.")
    item = serializers.CharField(required=False, allow_null=True, help_text="Required for view, cart and purchase.")
    type = serializers.ChoiceField(choices=EventType.choices)
    occurred_at = serializers.DateTimeField(help_text="ISO 8601; without a zone it is read as UTC.")
    quantity = serializers.IntegerField(required=False, min_value=0, default=1)
    value = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, allow_null=True)
    discount = serializers.DecimalField(max_digits=12, decimal_places=2, required=False, min_value=0)
    attributes = serializers.DictField(required=False, allow_null=True)
    order = serializers.CharField(
        max_length=128,
        required=False,
        allow_null=True,
        help_text="The order (basket) the event belongs to. Without one, a customer's purchases at the same "
        "moment count as one order.",
    )


class EventBatchSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=64, help_text="The system sending the events, e.g. 'web' or 'pos'.")
    on_unknown = serializers.ChoiceField(
        choices=["create", "reject"],
        default="create",
        help_text="Unknown customer or item ids: 'create' makes stubs (never mailed until their details and "
        "consent arrive); 'reject' rejects those rows.",
    )
    events = EventRowSerializer(many=True, help_text=f"At most {settings.API_MAX_BATCH} per request.")


class EventBatchResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    customers_created = serializers.IntegerField()
    items_created = serializers.IntegerField()
    rejected = serializers.ListField(
        child=serializers.DictField(), help_text="[{row, event_id, errors: [{field, value, reason}]}]"
    )


# --- Schema-only descriptions of the error answers (docs/reliability.md) ---


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
