import json

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import JsonResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from campaigns.admin.common import ActingUserMixin
from campaigns.audiences import FIELDS, OP_LABELS, AudienceCountTooSlow, audience_count, shop_clock
from campaigns.models import Audience, Promotion
from recommender.serving import NoActiveModel


class AudienceForm(forms.ModelForm):
    class Meta:
        model = Audience
        fields = ["name", "description", "rules"]
        widgets = {"rules": forms.Textarea(attrs={"rows": 4, "class": "vLargeTextField", "id": "id_rules"})}


@admin.register(Audience)
class AudienceAdmin(ActingUserMixin, admin.ModelAdmin):
    form = AudienceForm
    list_display = ["name", "description", "created_by", "updated_at"]
    search_fields = ["name", "description"]
    readonly_fields = ["created_by"]
    change_form_template = "admin/campaigns/audience/change_form.html"

    def get_urls(self):
        count = self.admin_site.admin_view(require_POST(self.count_view))
        return [path("count/", count, name="campaigns_audience_count")] + super().get_urls()

    def _builder_context(self):
        promotions = Promotion.objects.filter(historical=False).order_by("name").values("id", "name")
        return {
            "builder_config": {
                "fields": FIELDS,
                "ops": OP_LABELS,
                "promotions": list(promotions),
                "countUrl": reverse("admin:campaigns_audience_count"),
            },
            "shop_clock": shop_clock(),
        }

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        context = self._builder_context()
        audience = self.get_object(request, object_id) if object_id else None
        # A reader (an analyst) sees the rules in the builder, every control disabled: no form field to edit.
        context["builder_config"]["rules"] = audience.rules if audience else {}
        context["builder_config"]["readOnly"] = not (
            self.has_change_permission(request, audience) if audience else self.has_add_permission(request)
        )
        extra_context = {**(extra_context or {}), **context}
        return super().changeform_view(request, object_id, form_url, extra_context)

    def count_view(self, request):
        """The live count of the rule builder: {total, contactable, excluded: {reason: n}} or {error}."""
        if not (self.has_view_permission(request) or self.has_add_permission(request)):
            return JsonResponse({"error": "forbidden"}, status=403)
        try:
            rules = json.loads(request.body or b"{}").get("rules") or {}
            return JsonResponse(audience_count(rules))
        except (ValueError, AttributeError):
            return JsonResponse({"error": 'The request is not JSON of the form {"rules": {...}}.'}, status=400)
        except ValidationError as error:
            return JsonResponse({"error": " ".join(error.messages)}, status=400)
        except NoActiveModel as error:
            return JsonResponse({"error": f"Affinity rules need the active model: {error}."}, status=400)
        except AudienceCountTooSlow as error:
            seconds = error.args[0] / 1000
            message = f"Counting this audience took longer than {seconds:g} s and was stopped: use simpler rules."
            return JsonResponse({"error": message}, status=400)
