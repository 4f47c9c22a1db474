import json

import pandas as pd
import pyarrow as pa
import pytest
import yaml

from analysis import results as R
from core import storage
from search.cli import main
from search.experiment import load_experiment
from search.plan import make_plan
from search.strategies import get_scheduler, get_searcher
from spaces.presets import preset_path

SMALL = {
    "name": "small",
    "kind": "segmentation",
    "data": {"root": ".", "classes": "superalloy"},
    "space": {
        "encoder": ["resnet18", "vgg11_bn"],
        "decoder": ["Unet", "FPN", "DeepLabV3Plus"],
        "init": ["none", "micronet"],
        "bce_weight": {"uniform": [0.3, 0.9]},
    },
    "repeats": 2,
    "search": {"algorithm": "grid", "num_samples": 1, "seed": 7},
    "scheduler": {"name": "asha", "max_epochs": 27, "grace_epochs": 3, "reduction_factor": 3},
}


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "storage": str(tmp_path / "runs")}))
    return path


def test_small_space_counts_by_hand(small):
    exp = load_experiment(small)
    plan = make_plan(exp, feasibility=False)
    assert plan.trials == 2 * 3 * 2 * 2  # encoders x decoders x inits x repeats
    assert plan.fifo_epochs == 24 * 27
    # rungs 3, 9 (27 is max): 24 trials x 3 + 8 x (9-3) + 3 x (27-9)
    assert plan.rungs == [3, 9]
    assert plan.asha_epochs == 24 * 3 + 8 * 6 + 3 * 18
    keys = {(p["encoder"], p["decoder"], p["init"], p["seed"]) for p in plan.points}
    assert len(keys) == 24
    # a configuration's repeats share their sampled bce_weight
    by_config = {}
    for p in plan.points:
        by_config.setdefault((p["encoder"], p["decoder"], p["init"]), set()).add(p["bce_weight"])
    assert all(len(v) == 1 for v in by_config.values())


def test_infeasible_pairs_are_dropped_and_each_listed_once(small):
    plan = make_plan(load_experiment(small))  # the trainables' own checks
    # vgg11_bn cannot be dilated (DeepLabV3Plus): 2 inits x 2 repeats dropped; micronet exists
    assert plan.trials == 24 - 4
    assert len(plan.infeasible) == 4
    assert len(plan.reasons) == 1
    reason, count = plan.reasons[0]
    assert "DeepLabV3Plus with vgg11_bn" in reason and count == 4


def test_grid_order_is_shuffled_with_the_search_seed(small):
    a = get_searcher("grid").points(load_experiment(small))
    b = get_searcher("grid").points(load_experiment(small))
    c = get_searcher("grid").points(load_experiment(small, overrides=["search.seed=8"]))
    assert a == b
    assert [p["decoder"] for p in a] != [p["decoder"] for p in c]
    assert sorted(map(repr, a)) != sorted(map(repr, c))  # the draws follow the seed too


def test_paper_preset_hand_count():
    exp = load_experiment(preset_path("paper"))
    plan = make_plan(exp, feasibility=False)
    assert plan.trials == 36 * 7 * 4  # 1008
    assert plan.fifo_epochs == 1008 * 1000


@pytest.mark.slow  # smp builds 252 models on the meta device: about a minute on 2 cores
def test_paper_preset_hand_count_of_infeasible_combinations():
    plan = make_plan(load_experiment(preset_path("paper")))
    assert plan.trials + len(plan.infeasible) == 1008
    # smp cannot dilate densenet x4, vgg*_bn x3, inceptionresnetv2, inceptionv4, xception
    # (10 encoders) for DeepLabV3Plus and PAN: 10 x 2 decoders x 4 inits = 80 ...
    pair_drops = sum(c for r, c in plan.reasons if "dilated" in r)
    assert pair_drops == 10 * 2 * 4
    # ... and smp has no ImageNet weights for dpn68b, dpn92, dpn107 (5 remaining decoders each)
    init_drops = sum(c for r, c in plan.reasons if "ImageNet" in r)
    assert init_drops == 3 * 7
    assert plan.trials == 1008 - 80 - 21


def test_asha_epochs_for_one_trial_is_a_full_run(small):
    exp = load_experiment(small)
    assert get_scheduler("asha").trial_epochs(1, exp.scheduler) == 27


def test_estimate_from_previous_runs_epochs(small, tmp_path):
    exp = load_experiment(small)
    rows = [{R.TRIAL: f"t{t}", R.EPOCH: e, R.WALL_S: 2.0 * e} for t in range(3) for e in (1, 2, 3)]
    storage.write_parquet(exp.run_dir / R.EPOCHS_FILE, pa.Table.from_pandas(pd.DataFrame(rows)))
    plan = make_plan(exp, feasibility=False, slots=2)
    assert plan.estimate_s == pytest.approx(2.0 * plan.asha_epochs / 2)


@pytest.mark.parametrize(
    ("extra", "at_once"),
    [({}, 8), ({"search": {"max_concurrent": 3}}, 3)],  # workers_per_trial: test_footprint
)
def test_estimate_runs_as_many_trials_at_once_as_the_sweep_will(small, extra, at_once):
    raw = yaml.safe_load(small.read_text())
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value}
    small.write_text(yaml.safe_dump(raw))
    exp = load_experiment(small)
    rows = [{R.TRIAL: f"t{t}", R.EPOCH: e, R.WALL_S: 2.0 * e} for t in range(3) for e in (1, 2, 3)]
    storage.write_parquet(exp.run_dir / R.EPOCHS_FILE, pa.Table.from_pandas(pd.DataFrame(rows)))
    plan = make_plan(exp, feasibility=False, slots=8)
    assert plan.at_once == at_once
    assert plan.estimate_s == pytest.approx(2.0 * plan.asha_epochs / at_once)


def test_dry_run_prints_the_plan_and_trains_nothing(small, capsys):
    assert main(["sweep", str(small), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "trials: 20 (+4 infeasible)" in out
    assert "skipped 4 point(s): DeepLabV3Plus with vgg11_bn" in out
    assert "rungs at epochs [3, 9]" in out
    assert "FIFO 540, ASHA" in out
    assert not (small.parent / "runs").exists()


def test_dry_run_of_bad_file_exits_2_with_one_line(tmp_path, capsys):
    assert main(["sweep", str(tmp_path / "none.yaml"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_pair_answers_are_cached_on_disk_by_library_versions(tmp_path, monkeypatch):
    from trainables import feasibility, models

    monkeypatch.setenv("MICROSWEEP_CACHE", str(tmp_path))
    feasibility._disk_pairs.cache_clear()
    seen = []
    answers = feasibility.check_pairs(
        [("Unet", "resnet18"), ("DeepLabV3Plus", "vgg11_bn"), ("Unet", "resnet18")],
        progress=lambda done, total: seen.append((done, total)),
    )
    assert answers[("Unet", "resnet18")] is None
    assert "dilated" in answers[("DeepLabV3Plus", "vgg11_bn")]
    assert seen == [(1, 2), (2, 2)]
    saved = json.loads((tmp_path / feasibility.CACHE_FILE).read_text())
    assert saved["versions"] == feasibility.versions() and len(saved["pairs"]) == 2

    # A new process (fresh memory cache) answers from the file without building any model.
    feasibility._disk_pairs.cache_clear()
    monkeypatch.setattr(models, "check_feasible", lambda *a, **k: pytest.fail("built again"))
    again = feasibility.check_pairs([("DeepLabV3Plus", "vgg11_bn")], progress=seen.append)
    assert again == {("DeepLabV3Plus", "vgg11_bn"): answers[("DeepLabV3Plus", "vgg11_bn")]}
    assert len(seen) == 2  # nothing built, no progress


@pytest.mark.parametrize("content", ["{not json", '{"versions": "smp 0.0.1", "pairs": {}}'])
def test_a_corrupt_or_foreign_cache_is_ignored_and_rewritten(tmp_path, monkeypatch, content):
    from trainables import feasibility

    monkeypatch.setenv("MICROSWEEP_CACHE", str(tmp_path))
    (tmp_path / feasibility.CACHE_FILE).write_text(
        content.replace("{}", '{"Unet|resnet18": "stale reason"}')
    )
    feasibility._disk_pairs.cache_clear()
    assert feasibility.pair_reason("Unet", "resnet18") is None
    saved = json.loads((tmp_path / feasibility.CACHE_FILE).read_text())
    assert saved["versions"] == feasibility.versions()
    assert saved["pairs"] == {"Unet|resnet18": None}


def test_dry_run_shows_progress_of_pair_checks(small, capsys, monkeypatch, tmp_path):
    from trainables import feasibility

    monkeypatch.setenv("MICROSWEEP_CACHE", str(tmp_path / "fresh"))
    feasibility._disk_pairs.cache_clear()
    assert main(["sweep", str(small), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "checking encoder/decoder pairs with smp: 6/6" in err  # 2 encoders x 3 decoders
