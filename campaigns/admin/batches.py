from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from campaigns.admin.sending import SendingAdminMixin
from campaigns.messages import BatchMessages, recipient_message
from campaigns.models import Batch, Recipient
from campaigns.rendering import TemplateProblem
from campaigns.services.batches import (
    approval_blockers,
    batch_approve,
    batch_cancel,
    batch_is_stale,
    batch_reject,
)
from campaigns.services.predictions import batch_predicted_vs_actual
from campaigns.services.testsend import batch_test_send
from recommender.models import ItemChoice
from shop.models import Item

KIND_LABELS = {choice.value: choice.label for choice in (ItemChoice.BUY_AGAIN, ItemChoice.NEW)}


class DecisionForm(forms.Form):
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 60}))


@admin.register(Batch)
class BatchAdmin(SendingAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "status_badge", "recipients", "created_by", "generated_at", "decided_by", "decided_at"]
    list_filter = ["status", "campaign"]
    search_fields = ["campaign__name"]
    list_select_related = ["campaign", "created_by", "decided_by"]

    @admin.display(description="status")
    def status_badge(self, obj):
        return format_html('<span class="batch-status {}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="recipients")
    def recipients(self, obj):
        return obj.summary.get("recipients", "–")

    def has_add_permission(self, request):
        return False  # batches come from "Generate a batch" on a campaign

    def has_delete_permission(self, request, obj=None):
        return False  # the audit trail of what was sent to whom

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/progress/", view(self.progress_view), name="campaigns_batch_progress"),
            path("<int:pk>/decide/", view(self.decide_view), name="campaigns_batch_decide"),
            path("<int:pk>/cancel/", view(self.cancel_view), name="campaigns_batch_cancel"),
            path("<int:pk>/test-send/", view(self.test_send_view), name="campaigns_batch_test_send"),
            *self.sending_urls(),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = get_object_or_404(Batch.objects.select_related("campaign", "model_version"), pk=object_id)
        if not self.has_view_permission(request, batch):
            raise PermissionDenied
        summary = batch.summary or {}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Batch {batch}",
            "batch": batch,
            "summary": summary,
            "excluded": sorted((Recipient.Reason(k).label, v) for k, v in summary.get("excluded", {}).items()),
            "events": batch.events.select_related("by"),
            "may_approve": request.user.has_perm("campaigns.approve_batch"),
            "approval_blockers": approval_blockers(batch, request.user),
            "stale": batch.status == Batch.Status.GENERATED and batch_is_stale(batch),
            "may_change": request.user.has_perm("campaigns.change_batch"),
            "decision_form": DecisionForm(),
            "recipients_url": reverse("admin:campaigns_recipient_changelist") + f"?batch__id__exact={batch.pk}",
            "sample": _with_subjects(batch),
            "seeds": batch.campaign.seed_list(),
            "kept": batch_predicted_vs_actual(batch=batch),
        }
        return TemplateResponse(request, "admin/campaigns/batch/review.html", context)

    def progress_view(self, request, pk):
        batch = get_object_or_404(Batch, pk=pk)
        if not self.has_view_permission(request, batch):
            return JsonResponse({"error": "forbidden"}, status=403)
        return JsonResponse({"status": batch.status, "progress": batch.progress, "error": batch.error})

    def _post_only(self, request, pk, action, success):
        if request.method != "POST":
            return redirect("admin:campaigns_batch_change", pk)
        batch = get_object_or_404(Batch, pk=pk)
        try:
            action(batch)
        except (ValidationError, PermissionDenied) as error:
            for message in getattr(error, "messages", None) or [str(error)]:
                messages.error(request, message)
        else:
            messages.success(request, success)
        return redirect("admin:campaigns_batch_change", pk)

    def decide_view(self, request, pk):
        form = DecisionForm(request.POST or None)
        comment = form.data.get("comment", "")
        if request.POST.get("decision") == "approve":
            return self._post_only(
                request,
                pk,
                lambda b: batch_approve(batch=b, by=request.user, comment=comment),
                "The batch is approved.",
            )
        return self._post_only(
            request, pk, lambda b: batch_reject(batch=b, by=request.user, comment=comment), "The batch is rejected."
        )

    def cancel_view(self, request, pk):
        comment = request.POST.get("comment", "")
        return self._post_only(
            request, pk, lambda b: batch_cancel(batch=b, by=request.user, comment=comment), "The batch is cancelled."
        )

    def test_send_view(self, request, pk):
        ids = request.POST.getlist("recipient") + request.POST.get("recipient_ids", "").replace(",", " ").split()

        def send(batch):
            try:
                seeds = batch_test_send(batch=batch, recipient_ids=ids, by=request.user)
            except ValueError:
                raise ValidationError("Recipient ids are numbers, separated by commas or spaces.") from None
            messages.info(request, f"Test messages are on their way to {', '.join(seeds)}.")

        return self._post_only(request, pk, send, "Test send queued.")


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "customer",
        "outcome",
        "reason",
        "promotion",
        "code",
        "n_items",
        "expected_value",
        "render_ok",
        "send_status",
    ]
    list_filter = ["outcome", "reason", "send_status", "promotion", "batch"]
    search_fields = ["customer__external_id", "customer__email", "customer__name", "code"]
    list_select_related = ["customer", "promotion"]
    list_per_page = 50
    show_full_result_count = False
    change_form_template = "admin/campaigns/recipient/change_form.html"
    readonly_fields = [
        "batch",
        "customer",
        "outcome",
        "reason",
        "promotion",
        "code",
        "p_response",
        "expected_value",
        "expected_revenue",
        "expected_discount",
        "send_status",
        "send_after",
        "attempts",
        "sent_at",
        "provider_message_id",
        "send_error",
    ]
    fields = readonly_fields

    @admin.display(description="items")
    def n_items(self, obj):
        return len(obj.items)

    @admin.display(description="renders", boolean=True)
    def render_ok(self, obj):
        return None if obj.outcome != Recipient.Outcome.RECIPIENT else not obj.render_error

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        recipient = get_object_or_404(Recipient, pk=object_id)
        ids = [e["item_id"] for e in recipient.items] + [
            e["because_item_id"] for e in recipient.items if e.get("because_item_id")
        ]
        items = Item.objects.in_bulk(ids)
        explained = [
            {
                "item": items.get(e["item_id"]),
                "probability": e["probability"],
                "percent": 100 * e["probability"],
                "kind": KIND_LABELS.get(e.get("kind"), ""),  # batches before items had a kind: none
                "because": items.get(e.get("because_item_id")),
                "reason": e.get("reason", "") or (NOT_EXPLAINED if e.get("kind") == "new" else ""),
            }
            for e in recipient.items
        ]
        extra_context = {
            **(extra_context or {}),
            "recipient": recipient,
            "message": _message_of(recipient),
            "explained": explained,
        }
        return super().change_view(request, object_id, form_url, extra_context)


NOT_EXPLAINED = "not computed: this batch's message shows no reasons (generation skips the model's removal pass)"


def _with_subjects(batch, n=10):
    """The review's sample of recipients, each with its subject rendered now from the batch's snapshot."""
    rows = list(
        batch.recipients.filter(outcome=Recipient.Outcome.RECIPIENT, render_error="")
        .select_related("customer", "promotion")
        .order_by("id")[:n]
    )
    render = BatchMessages(batch).render if rows else None
    for row in rows:
        try:
            row.shown_subject = render(row)[0]
        except TemplateProblem as problem:  # rendered at generation: only a render limit hit now (a slow host)
            row.shown_subject = f"(does not render now: {problem})"
    return rows


def _message_of(recipient):
    """{"subject", "html", "error"} of a recipient's message, rendered now (campaigns/messages.py)."""
    if recipient.outcome != Recipient.Outcome.RECIPIENT or recipient.render_error:
        return {"subject": "", "html": "", "error": recipient.render_error}
    try:
        subject, html, _text = recipient_message(recipient)
    except TemplateProblem as problem:
        return {"subject": "", "html": "", "error": str(problem)}
    return {"subject": subject, "html": html, "error": ""}
