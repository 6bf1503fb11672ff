"""The template editor's live preview: the form's templates rendered for a sample customer, before saving."""

import pytest
from django.urls import reverse

from shop.models import Customer
from tests.campaigns.conftest import promotion

pytestmark = pytest.mark.django_db
PREVIEW = reverse("admin:campaigns_campaign_preview")


def test_it_renders_the_unsaved_templates_for_a_real_customer_and_the_chosen_promotion(client, marketer, shop):
    offer = promotion(name="Skin days", shared_code="SKIN15")
    offer.refresh_from_db()
    client.force_login(marketer)
    form = {
        "subject_template": "{{ customer.first_name }}, {{ promotion.discount_text }} & more",
        "body_template": "<p>Code {{ promotion.code }}</p>{% for i in items %}<p>{{ i.title }}</p>{% endfor %}",
        "promotions": [str(offer.id)],
    }
    first = client.post(PREVIEW, form).json()
    customers = Customer.objects.contactable().order_by("id")
    assert first["customer"].startswith(customers[0].name)
    assert first["subject"] == f"{customers[0].name.split()[0]}, {offer.discount_text} & more"
    assert "Code SKIN15" in first["html"] and first["text"].startswith("Code SKIN15")
    shown = offer.eligible_items().filter(active=True, in_stock=True).order_by("id")[0]
    assert shown.title in first["html"]
    # "another customer" walks on
    assert client.post(PREVIEW, {**form, "sample": "1"}).json()["customer"].startswith(customers[1].name)


def test_a_template_problem_names_the_template(client, marketer, shop):
    client.force_login(marketer)
    response = client.post(PREVIEW, {"subject_template": "Hi", "body_template": "{{ customer.nme }}"})
    assert response.status_code == 400 and response.json()["error"].startswith("Body: Unknown field(s): customer.nme")
    bad = client.post(PREVIEW, {"subject_template": "Hi", "body_template": "x", "promotions": ["a"]})
    assert bad.status_code == 400 and "promotions" in bad.json()["error"]


def test_the_form_carries_the_preview(client, marketer):
    client.force_login(marketer)
    page = client.get(reverse("admin:campaigns_campaign_add")).content.decode()
    assert "campaigns/template-preview.js" in page and PREVIEW in page
