"""The dry run's storage estimate (search.footprint) from the models' parameter counts."""

import pytest
import torch
import yaml

from search.cli import main
from search.experiment import load_experiment
from search.footprint import estimate_footprint, model_parameters, predicted_mask_bytes
from search.plan import make_plan
from trainables.models import create_model


def write(tmp_path, *, keep="best", to_keep=2, kind="segmentation", data=None):
    raw = {
        "name": f"fp-{keep}", "kind": kind,
        "space": {"encoder": ["resnet18", "resnet34"], "decoder": ["Unet"]}, "repeats": 2,
        "scheduler": {"name": "fifo", "max_epochs": 3},
        "fault": {"keep": keep, "checkpoints_to_keep": to_keep},
        "storage": str(tmp_path / "runs"),
    }  # fmt: skip
    if data is not None:
        raw["data"] = {"root": str(data), "classes": "superalloy"}
    path = tmp_path / f"{keep}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def plan(path):
    return make_plan(load_experiment(path), feasibility=False, slots=2)


def test_parameter_counts_are_those_of_the_real_models():
    model = create_model(decoder="Unet", encoder="resnet18", num_classes=3, init="none")
    assert model_parameters("Unet", "resnet18", 3) == sum(p.numel() for p in model.parameters())


def test_peak_and_final_follow_concurrency_checkpoints_and_keep(tmp_path):
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "d", seed=0, n_train=2, n_val=1, n_test=2, size=64)
    masks = predicted_mask_bytes(load_experiment(write(tmp_path, data=data)).data)
    assert masks == sum(p.stat().st_size for p in (data / "test_annot").iterdir())
    r18, r34 = model_parameters("Unet", "resnet18", 3), model_parameters("Unet", "resnet34", 3)
    best = estimate_footprint(plan(write(tmp_path, data=data)))
    assert best.state_bytes == 12 * r34  # fp32 model + 2 Adam moments (the best: once a trial)
    assert best.final_bytes == 2 * (4 * r18 + masks) + 2 * (4 * r34 + masks)
    # 2 r34 trials at once, each with 2 best-scored states, the latest, one being written and
    # its best weights
    assert best.peak_bytes == (4 * 12 + 4) * r34 * 2 + 2 * (4 * r18 + masks)
    every = estimate_footprint(plan(write(tmp_path, keep="all", to_keep=1, data=data)))
    # Ray keeps the latest checkpoint besides the best one: 2 states per trial stay, and the
    # final checkpoint also holds what `best` keeps (model.safetensors.zst, the predicted masks)
    assert every.final_bytes == 2 * (2 * 12 + 4) * (r18 + r34) + best.final_bytes
    assert every.final_bytes > 5 * best.final_bytes
    assert "final at most" in every.line() and "final ~" in best.line()  # an upper bound
    ended_r18 = 2 * ((2 * 12 + 4) * r18 + 4 * r18 + masks)
    assert every.peak_bytes == 2 * (3 * 12 + 4) * r34 + ended_r18  # + 1 written
    last = estimate_footprint(plan(write(tmp_path, keep="last", data=data)))
    assert last.final_bytes == 2 * (12 + 4) * (r18 + r34) + best.final_bytes


def test_asha_survivors_follow_rays_percentile_rule():
    from search.footprint import asha_survivors

    # 4 arrivals, eta 2: the 1st always, the 2nd 1/2, the 3rd 2/3, the 4th 1/2 of the cases
    assert asha_survivors(4, 2) == pytest.approx(1 + 1 / 2 + 2 / 3 + 1 / 2)
    assert (
        asha_survivors(1, 3) == 1 and 100 / 3 < asha_survivors(100, 3) < 100 / 3 + 5
    )  # a few more than 1/eta


def test_under_asha_only_the_trials_a_rung_lets_through_keep_weights(tmp_path):
    from search.footprint import completing_trials
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "d", seed=0, n_train=2, n_val=1, n_test=2, size=64)
    raw = yaml.safe_load(write(tmp_path, data=data).read_text())
    raw["space"]["lr"] = [1e-3, 3e-3, 1e-2]  # 2 x 3 x 2 repeats = 12 trials
    raw["scheduler"] = {"name": "asha", "max_epochs": 27, "grace_epochs": 3, "reduction_factor": 3}
    path = tmp_path / "asha.yaml"
    path.write_text(yaml.safe_dump(raw))
    asha = plan(path)
    assert asha.rungs == [3, 9] and 12 / 9 < completing_trials(asha) < 12 / 3
    fifo = estimate_footprint(plan(write(tmp_path, data=data)))
    assert estimate_footprint(asha).final_bytes < fifo.final_bytes


def test_dry_run_prints_the_storage_line_and_custom_kinds_have_none(tmp_path, capsys):
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "d", seed=0, n_train=2, n_val=1, n_test=2, size=64)
    assert main(["sweep", str(write(tmp_path, data=data)), "--dry-run"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if x.startswith("storage:")]
    assert len(line) == 1 and "peak ~" in line[0] and "(fault.keep: best)" in line[0], line
    custom = write(tmp_path, kind="tests.sweep_helpers:toy_trainable")
    assert estimate_footprint(plan(custom)) is None


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)  # the machine is shared


# --- pretraining sweeps: the same estimator, the task's own part (Task.trial_storage) --------
def _pretraining(tmp_path, *, zoo=True, workers=1, momentum=0.9):
    from tests.test_pretrain_data import _folder as tiny_folder

    data = tiny_folder(tmp_path / "mn", per_class=2, classes=3)
    train = {"size": 32, "zoo_dir": str(tmp_path / "zoo"), "momentum": momentum}
    names = "a-{encoder}" if zoo else ""  # one zoo entry per trial
    raw = {
        "name": "fp-pre", "kind": "pretraining", "data": {"root": str(data)},
        "space": {"encoder": ["resnet18", "resnet34"], "zoo_name": [names]},
        "train": train if zoo else {**train, "zoo_dir": ""},
        "scheduler": {"name": "fifo", "max_epochs": 3},
        "fault": {"checkpoints_to_keep": 2}, "storage": str(tmp_path / "runs"),
        "resources": {"cpu": 1, "workers_per_trial": workers},
    }  # fmt: skip
    path = tmp_path / "pre.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_pretraining_counts_the_classifier_with_sgd_momentum_and_its_zoo_entry(tmp_path):
    from trainables.classify import Classifier

    model = Classifier("resnet34", 3)  # the real classifier, 3 class folders
    r34 = sum(p.numel() for p in model.parameters())
    enc = sum(p.numel() for p in model.encoder.parameters())
    r18 = sum(p.numel() for p in Classifier("resnet18", 3).parameters())
    zoo = estimate_footprint(plan(_pretraining(tmp_path)))
    assert zoo.state_bytes == 2 * 4 * r34  # fp32 weights + SGD's momentum, not Adam's 2 moments
    # 2 trials at once, each with 2 best-scored states, the latest, one being written, its best
    assert zoo.peak_bytes == (4 * 8 + 4) * (r18 + r34)
    assert zoo.final_bytes == 0 and zoo.outside_bytes > 4 * enc  # the zoo: outside the run
    assert "zoo entries ~" in zoo.line()
    own = estimate_footprint(plan(_pretraining(tmp_path / "own", zoo=False)))
    assert own.final_bytes == 4 * (r18 + r34) and own.outside_bytes == 0  # model.safetensors
    plain = estimate_footprint(plan(_pretraining(tmp_path / "sgd", momentum=0.0)))
    assert plain.state_bytes == 4 * r34  # SGD without momentum keeps no buffer
    # 2 workers per trial on 2 slots: 1 trial at once, with Ray Train's state in train/ and
    # rank 0's previous best file besides Tune's checkpoints
    ddp = estimate_footprint(plan(_pretraining(tmp_path / "ddp", workers=2)))
    assert ddp.concurrency == 1 and ddp.peak_bytes == (4 * 8 + 4 + 8 + 4) * r34


def test_dry_run_of_a_pretraining_sweep_prints_its_storage_line(tmp_path, capsys):
    assert main(["sweep", str(_pretraining(tmp_path)), "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    line = [x for x in out if x.startswith("storage:")]
    assert len(line) == 1 and "peak ~" in line[0] and "(fault.keep: best; zoo entries ~" in line[0]
    assert "4 state(s) of 170 MB" in line[0], line  # resnet34 classifier: 21.3 M x 8 bytes


@pytest.mark.slow
def test_pretraining_estimate_is_within_25_percent_of_a_real_sweep(tmp_path):
    """A tiny pretraining sweep (bench/storage.py --pretraining, `keep: best`): the dry run's
    peak and final against the run folder's measured ones."""
    from bench.storage import measure, pretraining_experiment
    from trainables.data.synth import generate

    data = generate("micronet", tmp_path / "d", n_train=4, n_val=2, size=64, n_classes=3)
    got = measure(pretraining_experiment(tmp_path, data, "best"), every=0.01)
    assert got["counts"] == {"completed": 2}, got
    final = got["predicted_final"] / got["final"]
    assert 0.75 <= final <= 1.25, (final, got)
    # the measured peak is sampled (every 10 ms): a sample may miss the brief moment a new
    # checkpoint and the old one are both there, so the estimate may exceed what was seen
    peak = got["predicted_peak"] / got["peak"]
    assert 0.75 <= peak <= 1.5, (peak, got)
