import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from rest_framework.authtoken.models import Token

from promo_site.roles import roles_sync

DEMO_USERS = [("admin", None), ("marketer", "marketer"), ("approver", "approver"), ("analyst", "analyst")]


class Command(BaseCommand):
    help = (
        "Create the demo users (admin, marketer, approver, analyst) once and print their passwords, "
        "and the integration user's API token (the only one that may write shop data through the API)."
    )

    def handle(self, *args, **options):
        groups = roles_sync()
        store = settings.VAR_DIR / "demo-users.txt"
        known = dict(line.split(" ", 1) for line in store.read_text().splitlines()) if store.exists() else {}
        User = get_user_model()
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username, defaults={"is_staff": True})
            if created or username not in known:
                known[username] = secrets.token_urlsafe(9)
                user.set_password(known[username])
            user.is_staff = True
            user.is_superuser = role is None
            user.email = f"{username}@example.test"
            user.save()
            if role:
                user.groups.set([groups[role]])
        store.parent.mkdir(parents=True, exist_ok=True)
        store.write_text("".join(f"{name} {password}\n" for name, password in known.items()))
        store.chmod(0o600)
        self.stdout.write("Demo users (user / password / role):")
        for username, role in DEMO_USERS:
            self.stdout.write(f"  {username:<9} {known[username]:<14} {role or 'admin (superuser)'}")
        token = self._integration_token(groups["integration"])
        self.stdout.write(f"API token of the integration user (writes customers, items, events): {token}")

    def _integration_token(self, group):
        # A system, not a person: no password, no admin pages, a token for the API.
        user, created = get_user_model().objects.get_or_create(username="integration")
        if created:
            user.set_unusable_password()
            user.save()
        user.groups.set([group])
        return Token.objects.get_or_create(user=user)[0].key
