"""The batch page's sending section: Send, Pause, Resume, and the live progress as JSON."""

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path

from campaigns.models import Batch
from campaigns.services.sending import batch_pause, batch_resume, batch_send_progress, batch_send_start


class SendingAdminMixin:
    """For BatchAdmin: its _post_only runs the service and reports the outcome on the page."""

    def sending_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/send/", view(self.send_view), name="campaigns_batch_send"),
            path("<int:pk>/pause/", view(self.pause_view), name="campaigns_batch_pause"),
            path("<int:pk>/resume/", view(self.resume_view), name="campaigns_batch_resume"),
            path("<int:pk>/sending/", view(self.sending_view), name="campaigns_batch_sending"),
        ]

    def send_view(self, request, pk):
        return self._post_only(
            request, pk, lambda b: batch_send_start(batch=b, by=request.user), "Sending has started."
        )

    def pause_view(self, request, pk):
        comment = request.POST.get("comment", "")
        return self._post_only(
            request, pk, lambda b: batch_pause(batch=b, by=request.user, comment=comment), "Sending is paused."
        )

    def resume_view(self, request, pk):
        return self._post_only(request, pk, lambda b: batch_resume(batch=b, by=request.user), "Sending resumes.")

    def sending_view(self, request, pk):
        batch = get_object_or_404(Batch, pk=pk)
        if not self.has_view_permission(request, batch):
            return JsonResponse({"error": "forbidden"}, status=403)
        progress = batch_send_progress(batch=batch)
        return JsonResponse(
            {
                "status": batch.status,
                "status_label": batch.get_status_display(),
                "rate_limit": settings.SEND_RATE_PER_SECOND,
                **progress,
            }
        )
