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
        # Six epochs, not the 780 s budget: deterministic for the seed on any machine, and 5.5 minutes instead of
        # 13.5 on the 2-core machine (NDCG@10 0.0496 against transitions' 0.0475, HR@10 0.0790 against 0.0748).
        # The full figure is recsys_eval's (docs/benchmarks.md).
        "deep": make_model("deep", seed=0, verbose=False, max_epochs=6, max_seconds=None),
    }
    results = evaluate(models, split, ks=(10,))["models"]
    for metric in ("ndcg@10", "hr@10"):
        assert results["deep"][metric] > results["transitions"][metric], results
