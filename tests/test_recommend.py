"""Ranking the confirmed candidates of a run: P(best), CIs, cost, the verdict and its report."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from analysis import build_report, load_runs
from analysis import results as R
from analysis.answer import config_text
from analysis.recommend import (
    candidates,
    p_best,
    rank,
    read_recommendation,
    write_recommendation,
)
from analysis.synthetic import make_fake_run
from analysis.verdict import ci_text
from core.errors import ReportError

FACTORS = ["init", "decoder", "encoder"]
PLANTED = {"init": "micronet", "decoder": "FPN", "encoder": "resnet50"}
TWINS = {"encoder": ["resnet18", "resnet34"], "decoder": ["Unet"]}


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    return make_fake_run(tmp_path_factory.mktemp("planted") / "run", confirm_top=3, planted=PLANTED)


def twins_run(path, **overrides):
    """Two configurations with the same true IoU; resnet34 costs more per epoch."""
    return make_fake_run(
        path,
        factors=TWINS,
        effects={"encoder": {"resnet18": 0.0, "resnet34": 0.0}},
        epoch_seconds={"encoder": {"resnet18": 5.0, "resnet34": 12.0}},
        stop_fraction=0.0,
        diverge_fraction=0.0,
        error_fraction=0.0,
        confirm_top=2,
        **overrides,
    )


def test_a_planted_clearly_better_configuration_is_recommended(planted_run):
    rec = rank(load_runs([planted_run]), FACTORS, n_boot=2000, seed=0)
    win = rec.candidates[rec.winner]
    assert win.config == PLANTED
    assert win.p_best > 0.9
    assert rec.evidence == "strong"
    assert win.ci95[0] > rec.candidates[1].ci95[1]
    assert "best configuration" in rec.verdict and win.label in rec.verdict


def test_two_identical_configurations_get_a_weak_answer_naming_the_cheaper(tmp_path):
    trials = load_runs([twins_run(tmp_path / "run")])
    rec = rank(trials, ["encoder", "decoder"], n_boot=2000, seed=0)
    assert rec.evidence == "weak"
    assert rec.candidates[rec.winner].config["encoder"] == "resnet18"  # 5 s vs 12 s per epoch
    assert "evidence is weak" in rec.verdict
    assert "cheaper one, encoder=resnet18" in rec.verdict
    cost = re.search(r"cheaper one, encoder=resnet18[^(]*\((\d+\.\d) s vs (\d+\.\d) s", rec.verdict)
    assert cost and float(cost[1]) < float(cost[2]), rec.verdict  # the pick's own cost first
    # With parameter counts given, they decide: resnet34 made the smaller model here.
    params = {"resnet18": 20_000_000, "resnet34": 10_000_000}
    by_params = rank(
        trials, ["encoder", "decoder"], parameters=lambda c: params[c["encoder"]], seed=0
    )
    assert by_params.candidates[by_params.winner].config["encoder"] == "resnet34"
    assert "(10.0 M vs 20.0 M parameters of " in by_params.verdict, by_params.verdict


def test_p_best_sums_to_one_and_ties_share(planted_run):
    rec = rank(load_runs([planted_run]), FACTORS, n_boot=500, seed=3)
    assert len(rec.candidates) == 3
    assert sum(c.p_best for c in rec.candidates) == pytest.approx(1.0, abs=1e-9)
    doc = rec.to_json()
    assert sum(c["p_best"] for c in doc["candidates"]) == pytest.approx(1.0, abs=1e-5)
    flat = np.array([0.8, 0.8])
    assert p_best([flat, flat.copy()], n_boot=200, seed=0) == pytest.approx([0.5, 0.5])
    same = np.array([0.7, 0.8, 0.75])
    assert p_best([same, same.copy()], n_boot=4000, seed=0) == pytest.approx([0.5, 0.5], abs=0.03)
    shares = p_best([np.array([0.9]), np.array([0.5, 0.95])], n_boot=4000, seed=0)
    assert shares.sum() == pytest.approx(1.0) and 0.1 < shares[1] < 0.4  # 0.95 drawn twice


def test_candidates_are_the_top_search_configurations_by_best_val_iou():
    trials = pd.DataFrame(
        {
            R.TRIAL: ["a", "b", "c", "d", "e", "f"],
            "encoder": ["r18", "r18", "r34", "r50", "r101", "r152"],
            R.SEED: [0, 1, 0, 0, 0, 0],
            R.STATUS: [R.COMPLETED, R.STOPPED, R.STOPPED, R.DIVERGED, R.COMPLETED, R.COMPLETED],
            R.VAL_IOU: [0.70, 0.90, 0.80, 0.99, 0.60, 0.95],
            R.TEST_IOU: [0.7, np.nan, np.nan, np.nan, 0.6, 0.95],
            R.STAGE: [R.SEARCH, R.SEARCH, R.SEARCH, R.SEARCH, R.SEARCH, R.CONFIRM],
        }
    )
    picks = candidates(trials, ["encoder", R.SEED], top=3)
    assert [c.config for c in picks] == [
        {"encoder": "r18"},
        {"encoder": "r34"},
        {"encoder": "r101"},
    ]
    assert picks[0].best_val_iou == 0.90 and picks[0].trials == ("a", "b")
    # Without a stage column every trial is a search trial.
    picks = candidates(trials.drop(columns=R.STAGE), ["encoder"], top=1)
    assert picks[0].config == {"encoder": "r152"}
    with pytest.raises(ReportError, match="no completed confirm trial"):
        rank(trials.drop(columns=R.STAGE), ["encoder"])


def test_statistics_cost_and_paired_difference_match_the_trials(planted_run):
    trials = load_runs([planted_run])
    rec = rank(trials, FACTORS, n_boot=1000, seed=0)
    top, second = rec.candidates[:2]
    mine = trials[(trials[FACTORS] == pd.Series(top.config)).all(axis=1)]
    confirm = mine[mine[R.STAGE] == R.CONFIRM]
    assert top.test_iou[0] == pytest.approx(confirm[R.TEST_IOU].mean())
    assert top.val_iou[1] == pytest.approx(confirm[R.VAL_IOU].std(ddof=1))
    assert sum(top.trial_epochs.values()) == mine[R.EPOCHS].sum()
    assert top.trial_epochs[R.SEARCH] == mine.loc[mine[R.STAGE] == R.SEARCH, R.EPOCHS].sum()
    cpu_h = (mine[R.WALL_S] * mine[R.CPU]).sum() / 3600
    assert top.cost_hours["cpu"] == pytest.approx(cpu_h) and top.cost_hours["gpu"] == 0
    theirs = trials[(trials[FACTORS] == pd.Series(second.config)).all(axis=1)]
    theirs = theirs[theirs[R.STAGE] == R.CONFIRM]
    pairs = confirm.merge(theirs, on=R.SEED)
    diff = (pairs[f"{R.TEST_IOU}_x"] - pairs[f"{R.TEST_IOU}_y"]).mean()
    assert top.paired_to_next["n_pairs"] == 3
    assert top.paired_to_next["mean_diff"] == pytest.approx(diff)
    lo, hi = top.paired_to_next["ci95"]
    assert lo <= diff <= hi
    assert set(top.class_iou["test"]) == {"matrix", "precipitate"}


def test_recommendation_json_and_report_answer_agree(planted_run, tmp_path):
    rec = rank(load_runs([planted_run]), FACTORS, n_boot=1000, seed=0)
    write_recommendation(planted_run, rec)
    doc = read_recommendation(planted_run)
    assert doc == json.loads((planted_run / R.RECOMMENDATION_FILE).read_text())
    for key in ("winner", "evidence", "verdict", "candidates"):
        assert key in doc
    for c in doc["candidates"]:
        for key in ("config", "val_iou", "test_iou", "ci95", "p_best", "trial_epochs"):
            assert key in c
        assert set(c["cost_hours"]) == {"cpu", "gpu"} and len(c["trials"]) == 3
    out = build_report([planted_run], out=tmp_path / "report", accuracy_maps=False)
    md = (out / "report.md").read_text()
    assert md.index("## Answer") < md.index("## Runs")
    answer = md[md.index("## Answer") : md.index("## Runs")]
    win = doc["candidates"][doc["winner"]["rank"] - 1]
    assert f"**Use {config_text(doc['winner']['config'])}**" in answer
    assert f"P(best) = {win['p_best']:.2f}" in answer
    assert ci_text(win["ci95"]) in answer
    mean, std = win["test_iou"]["mean"] * 100, win["test_iou"]["std"] * 100
    assert f"test IoU is {mean:.1f} ± {std:.1f} %" in answer
    assert f"{win['trial_epochs']} trial-epochs on this configuration" in answer
    assert f"microsweep predict {planted_run}/model IMAGES --out pred" in answer
    assert doc["verdict"] in answer
    summary = json.loads((out / "summary.json").read_text())
    assert summary["answer"][0]["winner"] == doc["winner"]
    csv = pd.read_csv(out / "tables" / "answer_candidates.csv")
    assert csv["p_best"].tolist() == [c["p_best"] for c in doc["candidates"]]


def test_a_report_without_recommendation_has_no_answer(tmp_path):
    run = make_fake_run(tmp_path / "run")
    md = (build_report([run], out=tmp_path / "r", accuracy_maps=False) / "report.md").read_text()
    assert "## Answer" not in md


def test_a_report_over_several_runs_names_the_run_of_each_answer(planted_run, tmp_path):
    write_recommendation(planted_run, rank(load_runs([planted_run]), FACTORS, n_boot=200))
    other = make_fake_run(tmp_path / "other", dataset="EBC-1")
    out = build_report([other, planted_run], out=tmp_path / "r", accuracy_maps=False)
    md = (out / "report.md").read_text()
    assert md.count("## Answer") == 1
    assert f"### {planted_run} (demo, Super-1)" in md and f"### {other} " not in md
    assert (out / "tables" / "answer_candidates_1.csv").is_file()


def test_ranking_is_deterministic_with_a_seed(tmp_path):
    trials = load_runs([twins_run(tmp_path / "run")])
    factors = ["encoder", "decoder"]
    a = rank(trials, factors, n_boot=300, seed=7).to_json()
    b = rank(trials, factors, n_boot=300, seed=7).to_json()
    c = rank(trials, factors, n_boot=300, seed=8).to_json()
    assert a == b
    assert [x["p_best"] for x in a["candidates"]] != [x["p_best"] for x in c["candidates"]]
    assert all(math.isfinite(x["p_best"]) for x in a["candidates"])


def test_failed_confirm_trials_are_named_not_counted(tmp_path):
    run = make_fake_run(tmp_path / "run", confirm_top=2, planted=PLANTED)
    table = pd.read_parquet(run / R.TRIALS_FILE)
    mine = (table[FACTORS] == pd.Series(PLANTED)).all(axis=1) & (table[R.STAGE] == R.CONFIRM)
    lost = table[mine][R.TRIAL].iloc[0]
    table.loc[table[R.TRIAL] == lost, [R.STATUS, R.VAL_IOU]] = [R.ERRORED, np.nan]
    table.to_parquet(run / R.TRIALS_FILE)
    rec = rank(load_runs([run]), FACTORS, n_boot=200)
    win = rec.candidates[rec.winner]
    assert win.config == PLANTED and win.failed == (lost,) and lost not in win.trials
    write_recommendation(run, rec)
    md = (build_report([run], out=tmp_path / "r", accuracy_maps=False) / "report.md").read_text()
    assert "over 2 confirm trial(s) (1 more did not complete and are not counted)" in md


def test_as_many_trials_as_factors_keeps_configurations_apart():
    # Two trials, two factors: a configuration key must never be compared elementwise.
    trials = pd.DataFrame(
        {
            R.TRIAL: ["a", "b"],
            "encoder": ["r18", "r34"],
            "decoder": ["Unet", "Unet"],
            R.SEED: [5, 5],
            R.STATUS: [R.COMPLETED, R.COMPLETED],
            R.VAL_IOU: [0.8, 0.7],
            R.TEST_IOU: [0.8, 0.7],
            R.EPOCHS: [10, 30],
            R.STAGE: [R.CONFIRM, R.CONFIRM],
        }
    )
    rec = rank(trials, ["encoder", "decoder"], n_boot=100)
    assert [c.trial_epochs[R.CONFIRM] for c in rec.candidates] == [10, 30]
    assert rec.evidence == "weak" and "fewer than 2 confirm trials" in rec.verdict
    assert rec.candidates[1].paired_to_next is None
    assert rec.candidates[0].paired_to_next["mean_diff"] == pytest.approx(0.1)
