from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token


@pytest.mark.django_db
def test_it_creates_an_integration_user_with_a_token(settings, tmp_path):
    settings.VAR_DIR = tmp_path

    call_command("setup_demo_users", stdout=StringIO())
    out = StringIO()
    call_command("setup_demo_users", stdout=out)  # a second run keeps the same token

    token = Token.objects.get(user__username="integration")
    assert token.user.has_perm("shop.add_event") and not token.user.is_staff
    assert not token.user.has_usable_password()
    assert token.key in out.getvalue()
    assert not Token.objects.filter(user__username="marketer").exists()
