"""Uplift metrics against hand-computed cases, the estimators on planted uplift, and uplift_eval."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from recommender.ml.uplift import (
    ClassTransformationUplift,
    TwoModelUplift,
    fit_best,
    hillstrom_features,
    perfect_qini_curve,
    perfect_uplift_curve,
    qini_auc_score,
    qini_curve,
    random_qini_auc_score,
    random_uplift_at_k,
    random_uplift_auc_score,
    random_uplift_curve_area,
    uplift_at_k,
    uplift_auc_score,
    uplift_curve,
    uplift_curve_area,
)
from tests.conftest import shared_file

# Six customers, best predicted uplift first: (score, treated, responded).
#   a 0.9 T 1 | b 0.8 C 0 | c 0.7 T 1 | d 0.6 C 1 | e 0.5 T 0 | f 0.4 C 0
# Given in a shuffled order, so that the functions have to sort.
ORDER = [3, 0, 5, 1, 4, 2]  # d a f b e c
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])[ORDER]
TREATED = np.array([1, 0, 1, 0, 1, 0])[ORDER]
RESPONDED = np.array([1, 0, 1, 1, 0, 0])[ORDER]


def test_it_computes_the_uplift_curve_by_hand():
    x, values = uplift_curve(RESPONDED, SCORE, TREATED)

    # top 1: 1/1 - 0 (no control) = 1, x1 | top 2: 1/1 - 0/1 = 1, x2 | top 3: 2/2 - 0/1, x3
    # top 4: 2/2 - 1/2, x4 = 2 | top 5: 2/3 - 1/2, x5 = 5/6 | top 6: 2/3 - 1/3, x6 = 2
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert values == pytest.approx([0, 1, 2, 3, 2, 5 / 6, 2])


def test_it_computes_the_qini_curve_by_hand():
    x, values = qini_curve(RESPONDED, SCORE, TREATED)

    # treated responders - control responders * n_treated / n_control (0 without control)
    # top 4: 2 - 1 * 2/2 = 1 | top 5: 2 - 1 * 3/2 = 0.5 | top 6: 2 - 1 * 3/3 = 1
    assert x.tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert values == pytest.approx([0, 1, 1, 2, 1, 0.5, 1])


def test_it_takes_a_run_of_tied_scores_as_one_step():
    scores = np.array([0.5, 0.5, 0.5, 0.1])
    treated, responded = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 0])

    x, values = uplift_curve(responded, scores, treated)

    # the three tied customers enter together: 1/2 - 0/1 = 0.5, x3
    assert x.tolist() == [0, 3, 4]
    assert values == pytest.approx([0, 1.5, 2.0])  # then 1/2 - 0/2, x4


def test_it_normalises_the_qini_coefficient_between_random_and_perfect():
    # area under the curve above: 0.5 + 1 + 1.5 + 1.5 + 0.75 + 0.75 = 6; random line to (6, 1): 3.
    # Perfect order (treated responders, then the rest, control responders last): points
    # (2, 2), (5, 2), (6, 1): area 2 + 6 + 1.5 = 9.5. Qini = (6 - 3) / (9.5 - 3) = 6/13.
    x, values = perfect_qini_curve(RESPONDED, TREATED)
    assert x.tolist() == [0, 2, 5, 6] and values == pytest.approx([0, 2, 2, 1])

    assert qini_auc_score(RESPONDED, SCORE, TREATED) == pytest.approx(6 / 13)


def test_it_normalises_the_auuc_between_random_and_perfect():
    # area under the uplift curve: 0.5 + 1.5 + 2.5 + 2.5 + 17/12 + 17/12 = 59/6; random line to
    # (6, 2): 6. The perfect curve of scikit-uplift's construction (control responders 1, treated
    # non-responders 1, so score 2*(y == t) + t) passes (2, 2), (4, 4), (5, 10/3), (6, 2): area
    # 43/3. AUUC = (59/6 - 6) / (43/3 - 6) = 23/50.
    assert uplift_auc_score(RESPONDED, SCORE, TREATED) == pytest.approx(23 / 50)
    assert uplift_curve_area(RESPONDED, SCORE, TREATED) == pytest.approx(59 / 6 / 36)


def test_it_builds_the_perfect_uplift_curve_as_scikit_uplift_does():
    # 2 control responders > 1 treated non-responder: the score is 2*(y == t) + y, which puts the
    # treated responder first (3), the control responders next (1), the treated non-responder last.
    treated, responded = np.array([1, 0, 0, 1]), np.array([1, 1, 1, 0])

    x, values = perfect_uplift_curve(responded, treated)

    # top 1: 1/1 - 0 = 1 | top 3: 1/1 - 2/2 = 0 | top 4: 1/2 - 2/2, x4 = -2
    assert x.tolist() == [0, 1, 3, 4]
    assert values == pytest.approx([0, 1, 0, -2])


def test_it_scores_the_perfect_ordering_one_and_random_targeting_zero():
    perfect = RESPONDED * TREATED - RESPONDED * (1 - TREATED)

    assert qini_auc_score(RESPONDED, perfect, TREATED) == pytest.approx(1.0)
    assert random_qini_auc_score(RESPONDED, TREATED) == pytest.approx(0.0)
    assert random_uplift_auc_score(RESPONDED, TREATED) == pytest.approx(0.0)
    # the random line ends at 2 extra responders among 6: mean height 1 over 6
    assert random_uplift_curve_area(RESPONDED, TREATED) == pytest.approx(1 / 6)


def test_it_computes_uplift_at_k_over_the_whole_ranking():
    # top int(6 * 0.5) = 3: a, b, c -> treated 2/2 - control 0/1
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=0.5) == pytest.approx(1.0)
    # top int(6 * 0.7) = 4 and top 4: a, b, c, d -> 2/2 - 1/2
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=0.7) == pytest.approx(0.5)
    assert uplift_at_k(RESPONDED, SCORE, TREATED, k=4) == pytest.approx(0.5)
    # top int(6 * 0.3) = 1: a alone, no control customer to compare with
    assert math.isnan(uplift_at_k(RESPONDED, SCORE, TREATED, k=0.3))
    # random targeting: the whole population's 2/3 - 1/3, whatever k
    assert random_uplift_at_k(RESPONDED, TREATED) == pytest.approx(1 / 3)


def test_it_breaks_ties_in_uplift_at_k_as_scikit_uplift_does():
    # scikit-uplift reverses a stable ascending sort: equal scores come last index first,
    # so the top 2 of four equal scores are customers 3 and 2.
    treated, responded = np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])

    assert uplift_at_k(responded, np.zeros(4), treated, k=2) == pytest.approx(0 - 1)


@pytest.mark.parametrize("k", [0.0, 1.0, 6, -1])
def test_it_rejects_a_k_outside_the_population(k):
    with pytest.raises(ValueError, match="k="):
        uplift_at_k(RESPONDED, SCORE, TREATED, k=k)


def test_it_rejects_labels_other_than_zero_and_one():
    with pytest.raises(ValueError, match="treatment must hold only 0 and 1"):
        qini_auc_score(RESPONDED, SCORE, TREATED * 2)


# --- estimators ------------------------------------------------------------------------------


def planted(n=6000, treated_share=0.5, seed=0):
    """Response 0.2 for everyone, plus 0.3 when treated and x0 > 0; x1 is noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    treatment = (rng.random(n) < treated_share).astype(int)
    rate = 0.2 + 0.3 * treatment * (X[:, 0] > 0)
    return X, (rng.random(n) < rate).astype(int), treatment


SMALL = {"learning_rate": 0.1, "max_iter": 50, "max_depth": 2, "min_samples_leaf": 50}


@pytest.mark.parametrize("estimator", [TwoModelUplift(**SMALL), ClassTransformationUplift(**SMALL)])
def test_it_recovers_a_planted_uplift(estimator):
    X, y, treatment = planted(seed=1)
    X_new, y_new, treatment_new = planted(seed=2)

    uplift = estimator.fit(X, y, treatment).predict_uplift(X_new)

    responsive = X_new[:, 0] > 0
    assert uplift[responsive].mean() - uplift[~responsive].mean() > 0.2
    assert uplift_at_k(y_new, uplift, treatment_new) > random_uplift_at_k(y_new, treatment_new) + 0.1
    # Random targeting scores 0; the oracle that knows where the uplift is scores ~0.15 (not 1:
    # the perfect Qini curve also knows who responds by chance).
    oracle = qini_auc_score(y_new, responsive.astype(float), treatment_new)
    assert qini_auc_score(y_new, uplift, treatment_new) > 0.75 * oracle


@pytest.mark.parametrize("estimator_class", [TwoModelUplift, ClassTransformationUplift])
def test_a_model_pickled_under_the_old_module_path_still_loads(estimator_class, tmp_path, monkeypatch):
    # given an uplift model file as trainings wrote it before the package moved to recommender.ml.uplift
    import joblib

    X, y, treatment = planted(n=1000, seed=1)
    fitted = estimator_class(**SMALL).fit(X, y, treatment)
    path = tmp_path / "model-1.joblib"
    import recommender.uplift  # noqa: F401  (the alias lets pickle find the class under its old name)

    monkeypatch.setattr(estimator_class, "__module__", "recommender.uplift.models")
    joblib.dump({"model": fitted, "spec": {"columns": ["x0", "x1"]}}, path)
    monkeypatch.undo()
    assert b"recommender.uplift.models" in path.read_bytes() and b"recommender.ml.uplift" not in path.read_bytes()
    # when a fresh process (nothing imported yet) loads it
    code = (
        "import sys, joblib, numpy as np; "
        f"stored = joblib.load({str(path)!r}); "
        "print(type(stored['model']).__module__, type(stored['model']).__name__); "
        f"print(stored['model'].predict_uplift(np.array({X[:3].tolist()!r})).round(6).tolist())"
    )
    repository = Path(__file__).resolve().parents[2]
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repository)
    # then it is the new class, with the same predictions
    module_and_class, predictions = run.stdout.splitlines()
    assert module_and_class == f"recommender.ml.uplift.models {estimator_class.__name__}"
    assert json.loads(predictions) == fitted.predict_uplift(X[:3]).round(6).tolist()


def test_class_transformation_corrects_for_an_unequal_treatment_share():
    # With 20% treated, an unweighted 2 P(Z=1) - 1 would read +0.36 where the true uplift is 0.
    X, y, treatment = planted(n=10000, treated_share=0.2, seed=3)

    model = ClassTransformationUplift(**SMALL).fit(X, y, treatment)
    uplift = model.predict_uplift(X)

    assert model.treatment_share_ == pytest.approx(0.2, abs=0.02)
    assert uplift[X[:, 0] <= 0].mean() == pytest.approx(0.0, abs=0.06)
    assert uplift[X[:, 0] > 0].mean() == pytest.approx(0.3, abs=0.06)


def test_fit_best_reports_every_candidate_and_keeps_the_best_qini():
    X, y, treatment = planted(n=3000, seed=4)
    candidates = {
        "two_model": TwoModelUplift(**SMALL),
        "class_transformation": ClassTransformationUplift(**SMALL),
        "constant": TwoModelUplift(max_iter=1, learning_rate=1e-6),  # ~no signal: scores ~0
    }

    selection = fit_best(X, y, treatment, candidates=candidates, n_splits=3, random_state=0)

    assert set(selection.candidates) == set(candidates)
    best = max(selection.candidates, key=lambda name: selection.candidates[name]["qini"])
    assert selection.chosen == best != "constant"
    assert selection.candidates[best]["params"]["approach"] in ("TwoModelUplift", "ClassTransformationUplift")
    assert set(selection.candidates[best]) >= {"qini", "qini_std", "auuc", "uplift_at_k"}
    assert selection.model.predict_uplift(X[:5]).shape == (5,)  # refit on all rows, ready to use


def test_fit_best_is_reproducible_with_a_seed():
    X, y, treatment = planted(n=2000, seed=5)
    candidates = {"two_model": TwoModelUplift(**SMALL)}

    first = fit_best(X, y, treatment, candidates=candidates, n_splits=1, random_state=7)
    second = fit_best(X, y, treatment, candidates=candidates, n_splits=1, random_state=7)

    assert first.candidates == second.candidates
    assert np.array_equal(first.model.predict_uplift(X), second.model.predict_uplift(X))


def test_it_refuses_a_group_without_responders():
    X, y, treatment = planted(n=500, seed=6)
    y[treatment == 0] = 0

    with pytest.raises(ValueError, match="control group needs both"):
        TwoModelUplift(**SMALL).fit(X, y, treatment)


# --- Hillstrom features and the command ------------------------------------------------------

HEADER = "recency,history_segment,history,mens,womens,zip_code,newbie,channel,segment,visit,conversion,spend"
ROWS = [
    "10,2) $100 - $200,142.44,1,0,Surburban,0,Phone,Womens E-Mail,0,0,0",
    "6,3) $200 - $350,329.08,1,1,Rural,1,Web,No E-Mail,0,0,0",
    "9,5) $500 - $750,675.83,1,0,Rural,1,Web,Mens E-Mail,0,0,0",
]


def test_it_prepares_the_hillstrom_features():
    frame = pd.DataFrame([row.split(",") for row in ROWS], columns=HEADER.split(","))
    frame.loc[2, "channel"] = "Carrier pigeon"

    features = hillstrom_features(frame)

    assert features["history_segment"].tolist() == [2, 3, 5]
    assert features["history"].tolist() == [142.44, 329.08, 675.83]
    assert features[["zip_code=Rural", "zip_code=Surburban", "zip_code=Urban"]].values.tolist()[0] == [0, 1, 0]
    assert features[["channel=Multichannel", "channel=Phone", "channel=Web"]].values.tolist() == [
        [0, 1, 0],
        [0, 0, 1],
        [0, 0, 0],  # an unknown channel is no known channel
    ]


def write_csv(tmp_path, header=HEADER, rows=ROWS):
    path = tmp_path / "hillstrom.csv"
    path.write_text("\n".join([header, *rows]))  # no final line break, like the real file
    return path


def test_uplift_eval_names_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="nowhere.csv: no such file"):
        call_command("uplift_eval", "--hillstrom", str(tmp_path / "nowhere.csv"))


def test_uplift_eval_names_the_missing_columns(tmp_path):
    path = write_csv(tmp_path, header=HEADER.replace("recency", "recent").replace("visit", "visits"))

    with pytest.raises(CommandError, match="missing column\\(s\\) recency, visit"):
        call_command("uplift_eval", "--hillstrom", str(path))


def test_uplift_eval_names_the_group_without_rows(tmp_path):
    path = write_csv(tmp_path, rows=[row for row in ROWS if "No E-Mail" not in row])

    with pytest.raises(CommandError, match='no rows with segment "No E-Mail"'):
        call_command("uplift_eval", "--hillstrom", str(path))


def test_uplift_eval_refuses_an_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")

    with pytest.raises(CommandError, match="not a readable CSV file"):
        call_command("uplift_eval", "--hillstrom", str(path))


@pytest.mark.slow  # ../shared/data
def test_uplift_eval_beats_the_published_figure_on_hillstrom(tmp_path, capsys):
    hillstrom = shared_file("hillstrom/hillstrom.csv")
    out = tmp_path / "uplift.json"

    call_command("uplift_eval", "--hillstrom", str(hillstrom), "--json", str(out))

    results = json.loads(out.read_text())
    assert set(results) >= {"uplift_at_30", "qini", "auuc", "random_auuc", "chosen", "candidates"}
    assert set(results) >= {"seed", "n_train", "n_test"}
    assert results["seed"] == 42 and results["n_train"] + results["n_test"] == 42693
    assert results["chosen"] in results["candidates"]
    # scikit-uplift's tutorial: class transformation with gradient boosting, the same split and outcome
    assert results["uplift_at_30"] > 0.0661
    assert results["qini"] > results["random_qini"] and results["auuc"] > results["random_auuc"]
    assert "uplift@30%" in capsys.readouterr().out
