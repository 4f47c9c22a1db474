"""``analysis.importance`` and the report's "What mattered" section, on fake run folders."""

from __future__ import annotations

import importlib.util
import json
import math

import optuna
import pandas as pd
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from analysis import ReportError, build_report, importance, importance_study, load_runs
from analysis import param_importance as I
from analysis import results as R
from analysis.synthetic import FakeRunSpec, make_fake_run
from core.errors import UserError

HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="fANOVA needs scikit-learn")
EVALUATORS = [pytest.param("fanova", marks=needs_sklearn), "ped_anova"]
FACTORS = {
    "decoder": ["Unet", "FPN", "Linknet"],
    "encoder": ["resnet18", "resnet50"],
    "lr": [1.0e-4, 1.0e-3],
}
# decoder is planted strong (±15 IoU points); the other factors get the built-in ±3 at most
SPEC = FakeRunSpec(
    factors=FACTORS,
    effects={"decoder": {"Unet": 0.15, "FPN": -0.15, "Linknet": 0.0}},
    noise=0.02,
    max_epochs=6,
    rungs=(2,),
)


@pytest.fixture(scope="module")
def trials(tmp_path_factory) -> pd.DataFrame:
    return load_runs([make_fake_run(tmp_path_factory.mktemp("imp") / "run", SPEC)])


def done(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[(trials[R.STATUS] == R.COMPLETED) & trials[R.TEST_IOU].notna()]


def own_study(trials: pd.DataFrame) -> optuna.study.Study:
    """The study built by hand from the Parquet rows, as optuna's docs would."""
    dists = {
        "decoder": CategoricalDistribution(["FPN", "Linknet", "Unet"]),
        "encoder": CategoricalDistribution(["resnet18", "resnet50"]),
        "lr": CategoricalDistribution([1.0e-4, 1.0e-3]),
    }
    rows = done(trials)
    made = [
        optuna.trial.create_trial(
            params={"decoder": d, "encoder": e, "lr": float(lr)}, distributions=dists, value=v
        )
        for d, e, lr, v in zip(rows.decoder, rows.encoder, rows.lr, rows[R.TEST_IOU], strict=True)
    ]
    study = optuna.create_study(direction="maximize")
    study.add_trials(made)
    return study


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_planted_strong_factor_ranks_first(trials, evaluator):
    got = importance(trials, evaluators=(evaluator,), n_boot=10)
    assert list(got.columns) == list(I.COLUMNS)
    assert set(got["factor"]) == set(FACTORS)  # seed, status, results are no factors
    assert got.iloc[0]["factor"] == "decoder"
    assert got.iloc[0]["importance"] > 0.5
    assert got["importance"].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("evaluator", EVALUATORS)
def test_numbers_are_optunas_own(trials, evaluator):
    n = len(done(trials))
    got = importance(trials, evaluators=(evaluator,), n_boot=0, seed=3)
    factory = {
        "fanova": lambda: optuna.importance.FanovaImportanceEvaluator(seed=3),
        "ped_anova": lambda: optuna.importance.PedAnovaImportanceEvaluator(
            target_quantile=max(0.1, 5 / n)
        ),
    }[evaluator]
    expect = optuna.importance.get_param_importances(own_study(trials), evaluator=factory())
    assert dict(zip(got["factor"], got["importance"], strict=True)) == pytest.approx(expect)
    assert (got["n_trials"] == n).all()
    assert got["ci_low"].isna().all()  # no resamples, no interval


def test_bootstrap_intervals_are_seeded_and_hold_the_estimate(trials):
    a = importance(trials, evaluators=("ped_anova",), n_boot=40, seed=1)
    assert a.equals(importance(trials, evaluators=("ped_anova",), n_boot=40, seed=1))
    assert not a.equals(importance(trials, evaluators=("ped_anova",), n_boot=40, seed=2))
    assert (a["ci_low"] <= a["ci_high"]).all()
    top = a.iloc[0]
    assert top["ci_low"] <= top["importance"] <= top["ci_high"]


def test_stopped_trials_do_not_count(trials):
    stopped = trials[R.STATUS] == R.STOPPED
    assert stopped.sum() > 0
    # a stopped trial with an (impossible) perfect test IoU and the worst decoder would
    # change everything if it entered
    poisoned = trials.copy()
    poisoned.loc[stopped, R.TEST_IOU] = 1.0
    poisoned.loc[stopped, "decoder"] = "FPN"
    clean = importance(trials, evaluators=("ped_anova",), n_boot=5)
    assert importance(poisoned, evaluators=("ped_anova",), n_boot=5).equals(clean)
    assert clean["n_trials"].iloc[0] == len(done(trials))


def test_too_few_trials_or_factors_is_one_line(trials):
    few = pd.concat([done(trials).head(6), trials[trials[R.STATUS] == R.STOPPED]])
    with pytest.raises(ReportError, match=r"too few completed trials.*6 with a test_iou") as err:
        importance(few)
    assert "\n" not in str(err.value) and "ASHA-stopped" in str(err.value)
    with pytest.raises(ReportError, match=r"at least 2 factors that varied.*only 'decoder'"):
        importance(trials, factors=["decoder"])
    with pytest.raises(UserError, match="did you mean 'ped_anova'"):
        importance(trials, evaluators=("ped-anova",))
    with pytest.raises(ReportError, match="unknown importance target 'iou'"):
        importance(trials, "iou")


def test_distributions_follow_the_documented_rules():
    few = pd.Series([1.0e-4, 1.0e-3, 1.0e-4])
    assert I.distribution(few) == CategoricalDistribution([1.0e-4, 1.0e-3])
    assert I.distribution(pd.Series(["b", None, "a"])) == CategoricalDistribution(
        ["a", "b", "(unset)"]
    )
    assert I.distribution(pd.Series([True, False])) == CategoricalDistribution([False, True])
    many = pd.Series([10.0**-k for k in range(1, 13)])
    assert I.distribution(many) == FloatDistribution(1e-12, 0.1, log=True)
    assert I.distribution(pd.Series(range(8, 40, 2))) == IntDistribution(8, 38)


def test_study_is_usable_with_optunas_tools(trials):
    study = importance_study(trials)
    assert len(study.trials) == len(done(trials))
    assert study.best_value == pytest.approx(done(trials)[R.TEST_IOU].max())
    assert set(study.best_params) == set(FACTORS)


def test_report_has_the_section_and_summary_numbers(trials, tmp_path):
    run = make_fake_run(tmp_path / "run", SPEC)
    small = make_fake_run(tmp_path / "ebc", SPEC, dataset="EBC-1", seeds=(0,), seed=4)
    out = build_report([run, small], out=tmp_path / "rep", importance_boot=8, seed=2)
    md = (out / "report.md").read_text()
    section = md.split("## What mattered", 1)[1].split("\n## ", 1)[0]
    assert "completed trials only" in section and "| decoder |" in section
    assert "EBC-1: too few completed trials to rank factors" in section  # 12 trials, few done
    assert "![" in section and (out / "figures" / "importance.png").is_file()
    entry = json.loads((out / "summary.json").read_text())["importance"]
    assert entry["not_computed"]["EBC-1"].startswith("too few completed trials")
    usable = ["fanova", "ped_anova"] if HAVE_SKLEARN else ["ped_anova"]
    assert entry["evaluators"] == usable and entry["n_boot"] == 8
    expect = importance(trials, evaluators=usable, n_boot=8, seed=2)
    rows = pd.DataFrame(entry["rows"])
    assert set(rows[R.DATASET]) == {"Super-1"}
    assert rows["importance"].tolist() == pytest.approx(expect["importance"].tolist(), abs=1e-6)
    assert rows["ci_high"].tolist() == pytest.approx(expect["ci_high"].tolist(), abs=1e-6)
    csv = pd.read_csv(out / "tables" / "importance.csv")
    assert csv["factor"].tolist() == expect["factor"].tolist()
    again = build_report([run, small], out=tmp_path / "again", importance_boot=8, seed=2)
    for name in ("summary.json", "report.md", "figures/importance.png"):
        assert (again / name).read_bytes() == (out / name).read_bytes()


def test_report_without_scikit_learn_says_so(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        I.importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name)
    )
    run = make_fake_run(tmp_path / "run", SPEC)
    with pytest.raises(ReportError, match="fANOVA evaluator needs scikit-learn"):
        importance(load_runs([run]), evaluators=("fanova",))
    out = build_report([run], out=tmp_path / "rep", importance_boot=0, accuracy_maps=False)
    entry = json.loads((out / "summary.json").read_text())["importance"]
    assert entry["evaluators"] == ["ped_anova"]
    assert entry["skipped_evaluators"][0].startswith("the fANOVA evaluator needs scikit-learn")
    assert all(not math.isnan(r["importance"]) for r in entry["rows"])
