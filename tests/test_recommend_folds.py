"""`recommend --folds`: confirm across the k folds of a flat dataset instead of seeds.

Fast tests: ranking over folds (fake runs), which fold files a confirm stage trains on, and
the one-line refusals before Ray starts. One slow test runs it end to end with real Ray.
"""

from __future__ import annotations

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import build_report, load_runs
from analysis import results as R
from analysis.recommend import rank, write_recommendation
from analysis.synthetic import make_fake_run
from search.cli import main
from search.experiment import load_experiment
from search.folds import find_folds
from search.recommend import fold_experiments
from tests.data_factory import flat_dataset
from trainables.data.dataset import load_dataset
from trainables.data.splits import fold_sets, write_splits

FACTORS = ["init", "decoder", "encoder"]
PLANTED = {"init": "micronet", "decoder": "FPN", "encoder": "resnet50"}
EXPERIMENT = """\
name: NewAlloy
data: {root: NewAlloy, split_file: splits/NewAlloy-seed0.yaml, classes: ebc}
space: {encoder: [resnet18], decoder: [Unet, FPN], init: none, bce_weight: 0.7, lr: 1.0e-3}
scheduler: {name: asha, max_epochs: 1, grace_epochs: 1}
train: {crop: 32, samples_per_epoch: 4, batch_size: 2, precision: fp32}
resources: {cpu: 1, gpu: 0}
"""


def as_folds(run, seed=7):
    """Rewrite a fake run's confirm trials as ``recommend --folds`` writes them: the confirm
    seeds 100, 101, 102 become folds 1, 2, 3, all trained with one seed."""
    table = pd.read_parquet(run / R.TRIALS_FILE)
    confirm = table[R.STAGE] == R.CONFIRM
    table[R.FOLD] = pd.Series(pd.NA, index=table.index, dtype="Int64")
    table.loc[confirm, R.FOLD] = table.loc[confirm, R.SEED] - 99
    table.loc[confirm, R.SEED] = seed
    table.to_parquet(run / R.TRIALS_FILE)
    return run


@pytest.fixture(scope="module")
def fold_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("folds") / "run"
    return as_folds(make_fake_run(run, confirm_top=3, planted=PLANTED))


def test_ranking_over_folds_pairs_trials_by_fold(fold_run, tmp_path):
    trials = load_runs([fold_run])
    rec = rank(trials, FACTORS, n_boot=1000, seed=0)
    top, second = rec.candidates[:2]
    assert rec.replicates == "folds" and top.config == PLANTED and top.p_best > 0.9
    assert top.folds == (1, 2, 3) and set(top.seeds) == {7}
    assert sum(c.p_best for c in rec.candidates) == pytest.approx(1.0)
    # Paired by fold: 3 pairs (by seed there would be one, every trial has seed 7).
    confirm = trials[trials[R.STAGE] == R.CONFIRM]
    mine = confirm[(confirm[FACTORS] == pd.Series(top.config)).all(axis=1)]
    theirs = confirm[(confirm[FACTORS] == pd.Series(second.config)).all(axis=1)]
    pairs = mine.merge(theirs, on=R.FOLD)
    assert top.paired_to_next["n_pairs"] == 3
    diff = (pairs[f"{R.TEST_IOU}_x"] - pairs[f"{R.TEST_IOU}_y"]).mean()
    assert top.paired_to_next["mean_diff"] == pytest.approx(diff)
    assert top.test_iou[0] == pytest.approx(mine[R.TEST_IOU].mean())
    doc = rec.to_json()
    assert doc["replicates"] == "folds" and doc["candidates"][0]["folds"] == [1, 2, 3]
    write_recommendation(fold_run, rec)
    md = build_report([fold_run], out=tmp_path / "r", accuracy_maps=False) / "report.md"
    answer = md.read_text().split("## Answer")[1]
    assert "bootstrap resamples of the confirm folds" in answer
    assert "std over confirm folds" in answer and "confirm seeds" not in answer


def test_a_weak_answer_over_folds_asks_for_more_folds(tmp_path):
    run = make_fake_run(
        tmp_path / "run",
        factors={"encoder": ["resnet18", "resnet34"], "decoder": ["Unet"]},
        effects={"encoder": {"resnet18": 0.0, "resnet34": 0.0}},
        stop_fraction=0.0,
        diverge_fraction=0.0,
        error_fraction=0.0,
        confirm_top=2,
    )
    rec = rank(load_runs([as_folds(run)]), ["encoder", "decoder"], n_boot=500, seed=0)
    assert rec.evidence == "weak" and "3 confirm fold(s) each" in rec.verdict
    assert "more folds (`microsweep data split ROOT --folds K`)" in rec.verdict
    seeds = rank(load_runs([make_fake_run(tmp_path / "s", confirm_top=2)]), FACTORS, n_boot=50)
    assert seeds.replicates == "seeds" and seeds.to_json()["candidates"][0]["folds"] == []


@pytest.fixture
def flat(tmp_path, monkeypatch):
    """A flat dataset with its default split file and an experiment file beside it."""
    monkeypatch.chdir(tmp_path)
    root = flat_dataset(tmp_path / "NewAlloy", n=10)
    write_splits(root)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    return root


def test_each_fold_stage_trains_on_its_fold_file_with_one_new_seed(flat):
    write_splits(flat, folds=3)
    exp = load_experiment(flat.parent / "exp.yaml")
    folds = find_folds(exp, count=None)
    assert list(folds.files) == [1, 2, 3] and folds.name == "NewAlloy-seed0-fold*of3"
    assert list(find_folds(exp, count=2).files) == [1, 2]
    stages = fold_experiments(exp, [{"decoder": "FPN"}, {"decoder": "Unet"}], folds.files)
    assert [s.fold for s in stages] == [1, 2, 3]
    assert {s.seeds[0] for s in stages} == {max(exp.seeds) + 1} and stages[0].repeats == 1
    assert [s.ray_dir for s in stages] == [exp.run_dir / "confirm" / f"fold{i}" for i in (1, 2, 3)]
    tests, label = set(), load_dataset(exp.data).label
    for stage, path in zip(stages, folds.files.values(), strict=True):
        assert stage.data.split_file == path.resolve() and stage.stage == R.CONFIRM
        data = load_dataset(stage.data)
        assert data.label == label  # the search's dataset label in every stage's rows
        tests |= {name for split in data.test_splits for name in data.splits[split].names}
    assert len(tests) == 10  # every image is a test image in exactly one fold


def test_the_experiments_own_fold_file_picks_its_set(flat):
    write_splits(flat, folds=3)
    write_splits(flat, folds=4, seed=1)
    assert set(fold_sets(flat / "splits")) == {("NewAlloy", 0, 3), ("NewAlloy", 1, 4)}
    exp = load_experiment(
        flat.parent / "exp.yaml", overrides=["data.split_file=splits/NewAlloy-seed1-fold2of4.yaml"]
    )
    assert find_folds(exp, count=None).k == 4
    (flat / "splits" / "NewAlloy-seed1-fold3of4.yaml").unlink()  # an incomplete set is no set
    assert set(fold_sets(flat / "splits")) == {("NewAlloy", 0, 3)}


def refused(capsys, monkeypatch, *args):
    """``recommend`` exits 2 with one line, without launching anything."""

    def launched(*a, **k):
        raise AssertionError("a stage was launched")

    monkeypatch.setattr("search.recommend.run_sweep", launched)
    assert main(["recommend", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_folds_refusals_are_one_line_before_ray(flat, capsys, monkeypatch):
    err = refused(capsys, monkeypatch, "exp.yaml", "--folds")
    assert "holds no k-fold split files" in err
    assert f"`microsweep data split {flat} --folds 5`" in err
    write_splits(flat, folds=3)
    err = refused(capsys, monkeypatch, "exp.yaml", "--folds", "5")
    assert "the dataset has 3 folds" in err and f"data split {flat} --folds 5`" in err
    assert "--folds must be >= 2" in refused(capsys, monkeypatch, "exp.yaml", "--folds", "1")
    both = refused(capsys, monkeypatch, "exp.yaml", "--folds", "--seeds", "2")
    assert "give --seeds or --folds, not both" in both
    write_splits(flat, folds=4, seed=1)
    err = refused(capsys, monkeypatch, "exp.yaml", "--folds")
    assert "holds 2 fold sets" in err and "--set data.split_file=" in err


def test_folds_are_refused_on_a_dataset_with_its_own_splits(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    synth = ["data", "synth", "ebc", "EBC", "--n-train", "2", "--n-val", "1", "--n-test", "1"]
    assert main([*synth, "--size", "64"]) == 0
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.replace("root: NewAlloy, split_file: "
        "splits/NewAlloy-seed0.yaml", "root: EBC"))  # fmt: skip
    capsys.readouterr()
    err = refused(capsys, monkeypatch, "exp.yaml", "--folds")
    assert "--folds needs a flat dataset (images/ + masks/)" in err and "use --seeds" in err


def test_a_run_confirmed_over_seeds_is_not_mixed_with_folds(tmp_path, capsys, monkeypatch):
    run = make_fake_run(tmp_path / "runs" / "demo", confirm_top=2)
    monkeypatch.setattr("search.recommend.load_saved_experiment", lambda target: _exp(tmp_path))
    err = refused(capsys, monkeypatch, str(run), "--folds")
    assert "confirm stage is over seeds; --folds would mix both" in err


def _exp(tmp_path):
    root = flat_dataset(tmp_path / "NewAlloy", n=10)
    write_splits(root)
    write_splits(root, folds=3)
    (tmp_path / "exp.yaml").write_text(EXPERIMENT.replace("name: NewAlloy", "name: demo"))
    return load_experiment(tmp_path / "exp.yaml", overrides=[f"storage={tmp_path / 'runs'}"])


@pytest.mark.slow
def test_recommend_over_two_folds_end_to_end(ray_local, flat, capsys):
    write_splits(flat, folds=3)
    assert main(["recommend", "exp.yaml", "--top", "2", "--folds", "2"]) == 0
    assert "recommended:" in capsys.readouterr().out
    run = flat.parent / "runs" / "NewAlloy"
    table = pq.read_table(run / R.TRIALS_FILE)
    assert str(table.schema.field(R.FOLD).type) == "int64"
    trials = table.to_pylist()
    confirm = [t for t in trials if t[R.STAGE] == R.CONFIRM]
    assert len(confirm) == 4 and all(t[R.STATUS] == R.COMPLETED for t in confirm)
    assert sorted((t[R.FOLD], t["decoder"]) for t in confirm) == [
        (1, "FPN"), (1, "Unet"), (2, "FPN"), (2, "Unet"),
    ]  # fmt: skip
    assert {t[R.SEED] for t in confirm} == {1} and len({t[R.DATASET] for t in trials}) == 1
    assert all(t.get(R.FOLD) is None for t in trials if t[R.STAGE] == R.SEARCH)
    assert (run / "confirm" / "fold1").is_dir() and (run / "confirm" / "fold2").is_dir()
    rec = json.loads((run / R.RECOMMENDATION_FILE).read_text())
    assert rec["replicates"] == "folds" and rec["winner"]["best_trial"] in {
        t[R.TRIAL] for t in confirm
    }
    assert [sorted(c["folds"]) for c in rec["candidates"]] == [[1, 2], [1, 2]]
    assert rec["candidates"][0]["paired_to_next"]["n_pairs"] == 2  # paired by fold
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["provenance"]["members"][0]["fold"] in (1, 2)
    # each fold's rows carry the hash of its own split file, not the search's
    hashes = {t[R.FOLD]: t[R.DATASET_SHA256] for t in confirm}
    search_hash = next(t[R.DATASET_SHA256] for t in trials if t[R.STAGE] == R.SEARCH)
    assert len({hashes[1], hashes[2], search_hash}) == 3
    member = meta["provenance"]["members"][0]
    assert member["dataset_sha256"] == hashes[member["fold"]]


def test_another_fold_set_is_refused_where_one_was_confirmed(flat, capsys, monkeypatch):
    from search.folds import check_fold_set, record_fold_set

    write_splits(flat, folds=3)
    exp = load_experiment(flat.parent / "exp.yaml")
    record_fold_set(exp.run_dir, find_folds(exp, count=None))  # as a first --folds run does
    check_fold_set(exp.run_dir, find_folds(exp, count=2))  # fewer folds of the same set: fine
    write_splits(flat, folds=4, seed=1)
    other = "--set=data.split_file=splits/NewAlloy-seed1-fold2of4.yaml"
    err = refused(capsys, monkeypatch, "exp.yaml", "--folds", other)
    assert "over the fold set NewAlloy-seed0-fold*of3, but --folds now picks" in err
    assert "NewAlloy-seed1-fold*of4" in err
