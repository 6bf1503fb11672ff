from contextlib import contextmanager

from campaigns.signals import acting_user


class ListField:
    """A JSON list edited as one entry per line."""

    @staticmethod
    def to_text(values):
        return "\n".join(values or [])

    @staticmethod
    def to_list(text):
        return [line.strip() for line in (text or "").splitlines() if line.strip()]


@contextmanager
def acting(user):
    """Attribute the signals' side effects (voided approvals) to `user` in the audit log."""
    token = acting_user.set(user)
    try:
        yield
    finally:
        acting_user.reset(token)


class ActingUserMixin:
    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        with acting(request.user):
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        with acting(request.user):
            super().save_related(request, form, formsets, change)
