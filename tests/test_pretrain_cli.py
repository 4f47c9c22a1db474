"""`microsweep pretrain --workers N --gpus G`: parsed into a Ray Train experiment, no Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

import search.pretrain
from core.errors import UserError
from search import cli
from search.plan import make_plan
from trainables.data.synth import generate


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mn") / "mn"
    return generate("micronet", out, n_train=2, n_val=1, size=32, n_classes=2)


def _args(folder: Path, tmp_path: Path, *extra: str) -> list[str]:
    zoo = ["--zoo", str(tmp_path / "zoo"), "--name", "r", "--encoder", "tu-test_resnet"]
    return ["pretrain", "--data", str(folder), *zoo, "--size", "32", *extra]


def test_workers_reach_the_experiment_and_its_plan(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    seen = {}

    def fake_run(exp, **_):  # stands in for Ray: the experiment the CLI built, planned
        seen["exp"], seen["plan"] = exp, make_plan(exp, feasibility=False, slots=1)
        return {}  # no zoo entry: the command must then fail, not exit 0

    monkeypatch.setattr(search.pretrain, "run_one_trial", fake_run)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert cli.main(_args(folder, tmp_path, "--workers", "2")) == cli.EXIT_USER_ERROR
    exp = seen["exp"]
    assert exp.kind == "pretraining" and exp.task.multi_worker
    assert (exp.resources.workers_per_trial, exp.resources.cpu) == (2, 2)  # 4 CPUs shared
    assert seen["plan"].trials == 1
    assert "without exporting" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--workers", "0"), "`--workers` must be an integer >= 1, but got 0"),
        (("--workers", "3", "--cpus", "2"), "--workers 3 x --cpus 2 = 6 CPUs, but this machine"),
        (("--gpus", "1"), "--workers 1 x --gpus 1 = 1 GPU(s), but this machine has 0; use"),
        (("--gpus", "-1"), "`--gpus` must be a number >= 0, but got -1.0"),
        (("--workers", "2", "--gpus", "0.5"), "`--gpus` must be 0 or 1 with --workers 2"),
    ],
)
def test_bad_workers_are_one_line_before_ray(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, extra, message
) -> None:
    monkeypatch.setattr(search.pretrain, "run_one_trial", pytest.fail)  # never reached
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert cli.main(_args(folder, tmp_path, *extra)) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(("gpus_here", "extra", "expected"), [(0, (), 0.0), (2, (), 1.0),
                         (1, ("--workers", "2"), 0.0), (2, ("--gpus", "0"), 0.0)])  # fmt: skip
def test_gpus_default_to_one_per_worker_where_the_machine_has_them(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpus_here, extra, expected
) -> None:
    seen: dict = {}

    def fake_run(exp, **_):
        seen["exp"] = exp
        return {}

    monkeypatch.setattr(search.pretrain, "run_one_trial", fake_run)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr("torch.cuda.device_count", lambda: gpus_here)
    cli.main(_args(folder, tmp_path, *extra))
    assert seen["exp"].resources.gpu == expected


def test_zoo_names_fill_encoder_and_seed_and_a_shared_name_is_refused(
    folder: Path, tmp_path: Path, capsys
) -> None:
    from search.experiment import parse_experiment

    def plan(train: dict, space: dict, **extra):
        raw = {"name": "p", "kind": "pretraining", "data": {"root": str(folder)},
               "space": space, "train": {"zoo_dir": str(tmp_path / "zoo"), **train},
               "storage": str(tmp_path / "runs"), **extra}  # fmt: skip
        return make_plan(parse_experiment(raw, base_dir=tmp_path), slots=1)

    two = {"encoder": ["resnet18", "mobilenet_v2"]}
    made = plan({"zoo_name": "mn-{encoder}-s{seed}"}, two, repeats=2)
    names = sorted(made.experiment.task.build_config(p).zoo_name for p in made.points)
    assert names == ["mn-mobilenet_v2-s0", "mn-mobilenet_v2-s1", "mn-resnet18-s0", "mn-resnet18-s1"]
    with pytest.raises(UserError, match=r"two trials would export the zoo entry 'mn'.*encoder"):
        plan({"zoo_name": "mn"}, two)
    with pytest.raises(UserError, match=r"would export the zoo entry 'mn-resnet18'.*seed 0 / 1"):
        plan({"zoo_name": "mn-{encoder}"}, {"encoder": "resnet18"}, repeats=2)
    with pytest.raises(UserError, match=r"\(lr 0.1 / 0.2\).*zoo_name: mn-\{encoder\}-\{lr\}"):
        plan({"zoo_name": "mn-{encoder}"}, {"encoder": "resnet18", "lr": [0.1, 0.2]})
    lrs = plan({"zoo_name": "mn-{encoder}-lr{lr}"}, {"encoder": "resnet18", "lr": [0.1, 0.2]})
    assert {lrs.experiment.task.build_config(p).zoo_name for p in lrs.points} == {
        "mn-resnet18-lr0.1", "mn-resnet18-lr0.2"}  # fmt: skip
    with pytest.raises(UserError, match="may name pretraining keys in braces only"):
        plan({"zoo_name": "mn-{enc}"}, two)
