"""What a worker process keeps between batches: a version's response model, and never an old one for a new
version or a replaced artifact."""

import os
from pathlib import Path

import pytest

from campaigns.audiences import shop_clock
from campaigns.services import generation
from recommender.models import ModelVersion
from recommender.response import ARTIFACT
from recommender.services import modelversion_activate, modelversion_train
from tests.campaigns.test_response_generation import trained  # noqa: F401 (a fixture)


@pytest.fixture(autouse=True)
def empty_cache():
    generation._responses.clear()
    yield
    generation._responses.clear()


@pytest.mark.django_db
def test_a_versions_response_model_is_loaded_once_and_a_new_version_is_not_the_cached_one(
    trained,  # noqa: F811 (the fixture)
    settings,
    admin_user,
):
    now = shop_clock()
    first = generation.response_predictor(trained, now=now)
    assert first is not None
    assert generation.response_predictor(trained, now=now) is first  # the same batch's next chunk, or the next batch

    newer = modelversion_train(version_id=ModelVersion.objects.create(algorithm="transitions").id)
    newer = modelversion_activate(version=newer, by=admin_user)
    second = generation.response_predictor(newer, now=now)
    assert second is not first and second.model is not first.model

    # the old version's artifact replaced (a newer modification time): read again
    path = Path(settings.MEDIA_ROOT) / trained.artifact / ARTIFACT
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    again = generation.response_predictor(trained, now=now)
    assert again is not first and again is not None


@pytest.mark.django_db
def test_a_new_shop_clock_or_an_old_entry_loads_again(trained, monkeypatch):  # noqa: F811
    now = shop_clock()
    first = generation.response_predictor(trained, now=now)
    later = generation.response_predictor(trained, now=now.replace(microsecond=(now.microsecond + 1) % 1_000_000))
    assert later is not first
    assert generation.response_predictor(trained, now=now) is first
    monkeypatch.setattr(generation, "RESPONSE_FRESH_SECONDS", 0)
    assert generation.response_predictor(trained, now=now) is not first


@pytest.mark.django_db
def test_a_version_without_a_response_model_has_none(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    version = ModelVersion.objects.create(algorithm="transitions", artifact="")
    assert generation.response_predictor(version, now=shop_clock()) is None
