"""The API keeps its OpenAPI contract: schemathesis sends generated requests (valid and invalid) to the app.

The schema is drf-spectacular's, generated from the app (the document /api/v1/schema/ serves to staff). The
requests go to the WSGI app in-process with an integration user's token (the role that may write), a bounded
and derandomized number of examples per operation. Every answer must be no server error, with a status code,
content type and body the schema documents for that operation (docs/reliability.md).
"""

import os

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# CI runs the same 20 cases per operation each time; API_SCHEMA_EXAMPLES=300 API_SCHEMA_RANDOM=1 searches further.
EXAMPLES = int(os.environ.get("API_SCHEMA_EXAMPLES", "20"))
RANDOM = bool(os.environ.get("API_SCHEMA_RANDOM"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

schema = schemathesis.openapi.from_dict(SchemaGenerator().get_schema(request=None, public=True))
schema.app = get_wsgi_application()


@pytest.fixture
def token(integration):
    return Token.objects.create(user=integration).key


@pytest.fixture(autouse=True)
def _one_connection_per_test():
    # As Django's test client does: a request must not close the test's database connection (its transaction).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    with override_settings(ALLOWED_HOSTS=["localhost", "testserver"], API_THROTTLE_RATE="100000/min"):
        yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    derandomize=not RANDOM,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_the_api_answers_as_its_schema_says(case, token):
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)


@pytest.mark.django_db
@pytest.mark.parametrize("who, status", [("anonymous", 302), ("integration", 302), ("analyst", 200)])
def test_the_schema_page_is_for_signed_in_staff(client, request, who, status):
    if who != "anonymous":
        client.force_login(request.getfixturevalue(who))
    response = client.get("/api/v1/schema/")
    assert response.status_code == status
    if status == 200:
        assert b"/api/v1/events/" in response.content
