"""A reader (the analyst) sees everything and changes nothing, and a refused action says why on a styled page."""

import json
import re

import pytest
from django.urls import reverse

from campaigns.models import Audience, Campaign, UpliftModel
from recommender.models import ModelEvent, ModelVersion

pytestmark = pytest.mark.django_db
RULES = {"match": "all", "rules": [{"field": "recency_days", "op": "lte", "value": 30}]}


def builder_config(page):
    found = re.search(r'<script id="builder-config" type="application/json">(.*?)</script>', page, re.S)
    return json.loads(found[1])


def test_an_analyst_sees_an_audiences_rules_in_the_builder_read_only(client, analyst, marketer):
    audience = Audience.objects.create(name="Recent", rules=RULES, created_by=marketer)
    url = reverse("admin:campaigns_audience_change", args=[audience.pk])
    client.force_login(analyst)
    config = builder_config(client.get(url).content.decode())
    assert config["readOnly"] is True and config["rules"] == RULES
    client.force_login(marketer)
    assert builder_config(client.get(url).content.decode())["readOnly"] is False


def test_an_analyst_opens_a_campaign(client, analyst, marketer):
    audience = Audience.objects.create(name="All", rules={}, created_by=marketer)
    campaign = Campaign.objects.create(name="Spring", audience=audience, created_by=marketer)
    client.force_login(analyst)
    response = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert response.status_code == 200 and "Spring" in response.content.decode()


def test_a_refused_action_shows_a_styled_page_that_says_why(client, analyst):
    client.force_login(analyst)
    response = client.get(reverse("admin:campaigns_campaign_add"))
    page = response.content.decode()
    assert response.status_code == 403
    assert 'id="refused-why"' in page and "analyst" in page and "Not allowed" in page
    assert 'id="dashboard-link"' in page  # the admin's header and styles, not a bare "403 Forbidden"


def test_a_refusal_with_a_reason_shows_the_reason(client, analyst, marketer):
    from django.core.exceptions import PermissionDenied
    from django.test import RequestFactory

    from promo_site.views import permission_denied

    request = RequestFactory().get("/")
    request.user = analyst
    page = permission_denied(request, PermissionDenied("You may not send, pause or resume batches.")).content
    assert b"You may not send, pause or resume batches." in page


def test_the_model_pages_show_labels_and_tables_not_objects_or_raw_json(client, analyst, admin_user):
    version = ModelVersion.objects.create(
        algorithm="transitions",
        status="ready",
        parameters={"alpha": 0.5},
        metrics={"validation": {"ndcg@10": 0.0475}, "test": {"ndcg@10": 0.0412}},
        progress={"stage": "done"},
    )
    ModelEvent.objects.create(version=version, action="activated", by=admin_user, note="")
    uplift = UpliftModel.objects.create(
        status="ready", chosen="two_models", scores={"two_models": {"qini": 0.0123}}, features=["recency"], batches=[3]
    )
    client.force_login(analyst)
    page = client.get(reverse("admin:recommender_modelversion_change", args=[version.pk])).content.decode()
    assert "ModelEvent object" not in page and f"activated by {admin_user}" in page
    assert 'id="metrics-table"' in page and "0.0475" in page and "0.0412" in page
    assert '{"validation"' not in page and "{&quot;validation" not in page
    page = client.get(reverse("admin:campaigns_upliftmodel_change", args=[uplift.pk])).content.decode()
    assert "0.0123" in page and "#3" in page and "{&quot;two_models" not in page
