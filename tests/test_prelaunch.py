"""Everything is checked before launch: numbers as people write them, every planned trial's
typed config, one line naming the key, exit code 2, and no Ray started."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from core.errors import UserError
from search.cli import main
from search.experiment import load_experiment
from search.plan import make_plan
from tests.data_factory import superalloy_dataset


@pytest.fixture
def write(tmp_path: Path):
    data = superalloy_dataset(tmp_path / "sa", counts={"train": 2, "val": 1, "test": 1})

    def _write(text: str) -> Path:
        given = yaml.safe_load(text)
        rest = {"name": "exp", "data": {"root": str(data), "classes": "superalloy"}}
        rest["storage"] = str(tmp_path / "runs")
        path = tmp_path / "exp.yaml"
        # the user's lines as typed (numbers included), then what they did not set
        extra = {k: v for k, v in rest.items() if k not in given}
        path.write_text(text + "\n" + yaml.safe_dump(extra))
        return path

    return _write


def ray_running() -> bool:
    ray = sys.modules.get("ray")
    return bool(ray and ray.is_initialized())


def test_numbers_written_as_people_write_them_are_numbers(write):
    path = write("space:\n  lr: 1e-3\n  bce_weight: [5e-1, 0.7]\ntrain:\n  lr_final: 3e-6\n")
    exp = load_experiment(path)
    assert exp.space["lr"].value == 0.001 and exp.space["bce_weight"].values == (0.5, 0.7)
    assert exp.train["lr_final"] == 3e-6
    points = make_plan(exp, feasibility=False).points
    assert {p["lr"] for p in points} == {0.001} and all(isinstance(p["lr"], float) for p in points)


BCE = "`space.bce_weight` must be in [0.0, 1.0], but got 1.5"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("space: {encoder: resnet18}\ntrain: {batch_size: -4}\n",
         "`train.batch_size` must be > 0, but got -4"),
        ("space: {encoder: resnet18}\ntrain: {lr: fast}\n",
         "`train.lr` must be a number, but got 'fast'"),
        ("space: {bce_weight: [0.5, 1.5]}\n", BCE),
        ("space: {precision: [fp32, bf61]}\n", "`space.precision` must be one of auto, fp32"),
        ("space: {bce_weight: {uniform: [0.5, 1.5]}}\nsearch: {algorithm: optuna}\n", BCE),
        ("space: {crop: 100}\n", "`space.crop` must be a multiple of 32, but got 100"),
    ],
)  # fmt: skip
def test_a_bad_trial_value_is_one_line_and_exit_2_before_ray_starts(write, capsys, text, line):
    path = write(text)
    for args in (["sweep", str(path), "--dry-run"], ["sweep", str(path)]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and line in err[0], err
    assert not ray_running()
    run = path.parent / "runs" / "exp"
    assert not run.exists() or not any(run.iterdir())  # nothing written either


def test_a_plan_in_which_nothing_can_train_refuses_before_ray(write, capsys):
    # vgg11_bn cannot be dilated: DeepLabV3Plus with it is infeasible, the only point
    path = write("space: {encoder: vgg11_bn, decoder: DeepLabV3Plus}\n")
    assert main(["sweep", str(path), "--dry-run"]) == 2
    assert "nothing to train" in capsys.readouterr().out
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to train" in err[0] and "dilated" in err[0]
    assert not ray_running()


def test_unknown_task_strategy_and_scheduler_names_answer_with_the_nearest(write):
    for text, hint in (
        ("kind: segmentaton\nspace: {}\n", "did you mean 'segmentation'"),
        ("space: {}\nsearch: {algorithm: optunaa}\n", "did you mean 'optuna'"),
        ("space: {}\nscheduler: {name: ashaa}\n", "did you mean 'asha'"),
    ):
        with pytest.raises(UserError, match=hint):
            load_experiment(write(text))


def test_train_gpus_beyond_the_machine_are_one_line(tmp_path: Path, capsys) -> None:
    data = superalloy_dataset(tmp_path / "sa", counts={"train": 2, "val": 1, "test": 1})
    args = ["train", "--data", str(data), "--classes", "superalloy", "--out", str(tmp_path / "r")]
    assert main([*args, "--gpus", "64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus 64 = 64 GPU(s), but this machine has" in err[0]
    assert not ray_running()
