import pytest
from playwright.sync_api import expect

from recommender.models import ModelVersion
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_training_shows_its_progress_live_and_an_admin_activates_it(page, live_server):
    # given an admin and a version in training
    UserFactory(username="boss", is_superuser=True)
    training = ModelVersion.objects.create(
        algorithm="deep",
        status="training",
        progress={"stage": "training", "epoch": 3, "metrics": {"val_ndcg@10": 0.0412}, "elapsed": 95, "eta": 310},
    )
    login(page, live_server, "boss")
    page.goto(f"{live_server.url}/admin/recommender/modelversion/{training.id}/change/")
    expect(page.locator("#p-epoch")).to_have_text("3")
    expect(page.locator("#p-metric")).to_contain_text("val_ndcg@10 0.0412")
    # when the worker reports the next epoch, the page follows without a reload
    ModelVersion.objects.filter(id=training.id).update(
        progress={"stage": "training", "epoch": 4, "metrics": {"val_ndcg@10": 0.0455}, "elapsed": 125, "eta": 280}
    )
    expect(page.locator("#p-epoch")).to_have_text("4", timeout=10000)
    expect(page.locator("#p-time")).to_have_text("2 min 5 s / 4 min 40 s")
    page.screenshot(path=str(ARTIFACTS / "admin-model-training.png"), full_page=True)
    # and when it is ready, the page shows the Activate button, which makes it the active version
    ModelVersion.objects.filter(id=training.id).update(
        status="ready", progress={"stage": "done"}, metrics={"validation": {"ndcg@10": 0.05, "hr@10": 0.09}}
    )
    page.locator("#activate").click(timeout=15000)
    expect(page.locator(".messagelist")).to_contain_text("is active")
    assert ModelVersion.objects.get(id=training.id).status == "active"


def test_versions_are_listed_with_their_metrics_side_by_side(page, live_server, marketer):
    ModelVersion.objects.create(
        algorithm="transitions", status="active", metrics={"validation": {"ndcg@10": 0.0475, "hr@10": 0.0748}}
    )
    ModelVersion.objects.create(
        algorithm="deep", status="ready", metrics={"validation": {"ndcg@10": 0.0579, "hr@10": 0.0927}}
    )
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/recommender/modelversion/")
    table = page.inner_text("#result_list")
    assert "0.0579" in table and "0.0475" in table
    # a marketer may start trainings but not activate: no Activate action is offered to them
    assert page.locator("text=Train a new version").count() == 1
    assert "Activate the selected version" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "admin-model-versions.png"), full_page=True)
