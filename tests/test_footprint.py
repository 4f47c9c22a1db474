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
    # Ray keeps the latest checkpoint besides the best one: 2 states per trial stay
    assert every.final_bytes == 2 * (2 * 12 + 4) * (r18 + r34) > 5 * best.final_bytes
    assert every.peak_bytes == 2 * (3 * 12 + 4) * r34 + 2 * (2 * 12 + 4) * r18  # + 1 written


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
