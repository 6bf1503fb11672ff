"""Quality check on the real Amazon Beauty data (minutes; skipped when the file is absent)."""

from pathlib import Path

import pytest

from recommender.ml.data import leave_one_out, read_sequences
from recommender.ml.evaluation import evaluate, make_model

# the shared data folder lives beside the repository root
BEAUTY = Path(__file__).resolve().parents[3] / ".." / "shared/data/amazon-beauty/Beauty.txt"


@pytest.mark.slow
@pytest.mark.skipif(not BEAUTY.exists(), reason="Beauty data not available")
def test_deep_beats_transitions_on_beauty_test_targets():
    data = read_sequences(BEAUTY)
    split = leave_one_out(data.sequences, data.n_items)
    models = {
        "transitions": make_model("transitions"),
        "deep": make_model("deep", seed=0, verbose=False),
    }
    results = evaluate(models, split, ks=(10,))["models"]
    for metric in ("ndcg@10", "hr@10"):
        assert results["deep"][metric] > results["transitions"][metric], results
