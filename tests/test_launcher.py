"""The one launcher end to end: every registered task and every search strategy x scheduler
runs through it; an existing local Ray is left alone; a sweep that trains nothing says why."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from analysis import results as R
from search.commands.sweep import format_summary
from search.experiment import parse_experiment
from search.launch import run_sweep
from search.strategies import list_schedulers, list_searchers
from trainables.task import get_task, list_tasks

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
pytestmark = pytest.mark.slow
TOY = "tests.sweep_helpers:toy_trainable"
TINY = "tu-test_resnet"


def _segmentation(tmp: Path) -> dict:
    from trainables.data.synth import generate

    data = generate("superalloy", tmp / "sa", seed=0, n_train=2, n_val=1, n_test=1, size=64)
    return {
        "data": {"root": str(data), "classes": "superalloy"},
        "space": {"encoder": "resnet18", "decoder": "Unet"},
        "train": {"crop": 64, "samples_per_epoch": 4, "batch_size": 2, "precision": "fp32"},
    }


def _pretraining(tmp: Path) -> dict:
    from trainables.data.synth import generate

    data = generate("micronet", tmp / "mn", n_train=2, n_val=1, size=64, n_classes=2)
    return {
        "data": {"root": str(data)},
        "space": {"encoder": TINY, "size": 32, "batch_size": 2, "lr": 0.01},
        "train": {"zoo_dir": str(tmp / "zoo"), "zoo_name": "tiny", "precision": "fp32"},
    }


def _replay(tmp: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trainables.replay import CHECKPOINT_BYTES, CURVE, EPOCH_S

    rows = {CURVE: [0, 0, 1, 1], "epoch": [1, 2, 1, 2], "val_iou": [0.3, 0.5, 0.2, 0.6],
            EPOCH_S: [1.0] * 4, CHECKPOINT_BYTES: [1000] * 4}  # fmt: skip
    pq.write_table(pa.table(rows), tmp / "curves.parquet")
    return {"data": {"curves": "curves.parquet"}, "space": {"curve": [0, 1], "speedup": 100.0}}


# one small example per registered task: a new task without one fails the test below
EXAMPLES = {"segmentation": _segmentation, "pretraining": _pretraining, "replay": _replay}


def _run(tmp: Path, name: str, **raw) -> list[dict]:
    base = {"name": name, "storage": str(tmp / "runs"), "resources": {"cpu": 1}}
    exp = parse_experiment({**base, **raw}, base_dir=tmp)
    return run_sweep(exp).trials


@pytest.mark.parametrize("task", list_tasks())
def test_every_registered_task_runs_through_the_launcher(ray_local, tmp_path, task):
    assert task in EXAMPLES, f"add a small example experiment for task {task!r}"
    example = EXAMPLES[task](tmp_path)
    fifo = {"name": "fifo", "max_epochs": 2}
    base = {"name": task, "storage": str(tmp_path / "runs"), "resources": {"cpu": 1}}
    result = run_sweep(parse_experiment({**base, "kind": task, "scheduler": fifo, **example},
                                        base_dir=tmp_path))  # fmt: skip
    metric = get_task(task).metric
    for row in result.trials:
        assert row[R.STATUS] == R.COMPLETED and row[R.EPOCHS] == 2, row
        assert 0 <= row[metric] <= 1  # the task's own objective names the column
    epochs = (tmp_path / "runs" / task / R.EPOCHS_FILE).is_file()
    assert epochs
    summary = format_summary(result)  # what `microsweep sweep` prints at the end
    assert f"{result.best[metric]:.4f}" in summary and "best trial:" in summary


@pytest.mark.parametrize("scheduler", list_schedulers())
@pytest.mark.parametrize("searcher", list_searchers())
def test_every_strategy_and_scheduler_runs_through_the_launcher(
    ray_local, tmp_path, searcher, scheduler
):
    space = {"decoder": ["Unet", "FPN"], "bce_weight": {"uniform": [0.5, 0.9]}}
    search = {"algorithm": searcher, "num_samples": 2 if searcher != "grid" else 1}
    if searcher == "listed":
        points = [{"decoder": "Unet", "bce_weight": 0.6}, {"decoder": "FPN", "bce_weight": 0.8}]
        search = {"algorithm": searcher, "points": points}
    raw = {
        "kind": TOY,
        "space": space,
        "search": search,
        "scheduler": {"name": scheduler, "max_epochs": 3, "grace_epochs": 1},
        "train": {"sleep": 0.01},
    }
    rows = _run(tmp_path, f"{searcher}-{scheduler}", **raw)
    assert len(rows) == 2
    assert {r[R.STATUS] for r in rows} <= {R.COMPLETED, R.STOPPED}
    assert all(0.5 <= r["bce_weight"] <= 0.9 for r in rows)


def _sweep_cli(tmp: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    exp = {
        "name": "toy", "kind": TOY, "space": {"decoder": ["Unet"]},
        "scheduler": {"name": "fifo", "max_epochs": 2}, "storage": str(tmp / "runs"),
    }  # fmt: skip
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(exp))
    return subprocess.run(
        [sys.executable, "-m", "search", "sweep", str(path), *extra],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def test_a_sweep_starts_its_own_ray_when_another_runs_on_the_machine(tmp_path):
    # RAY_TMPDIR keeps this head (and its address file) apart from other Ray users
    ray_tmp = tempfile.mkdtemp(prefix="rt", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp}
    env.pop("RAY_ADDRESS", None)
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--num-cpus=1",
         "--port=0", "--include-dashboard=false", "--block"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        address_file = Path(ray_tmp) / "ray" / "ray_current_cluster"
        deadline = time.monotonic() + 120
        while not address_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert address_file.is_file(), "the other Ray did not start"
        out = _sweep_cli(tmp_path, env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert "When connecting to an existing cluster" not in out.stderr
        assert (tmp_path / "runs" / "toy" / R.TRIALS_FILE).is_file()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=60)


def test_a_sweep_whose_inits_cannot_be_downloaded_exits_2_with_one_line(tmp_path):
    raw = {"name": "offline", "storage": str(tmp_path / "runs"), "resources": {"cpu": 2},
           "scheduler": {"name": "fifo", "max_epochs": 1}, **_segmentation(tmp_path)}  # fmt: skip
    raw["space"] = {"encoder": "resnet18", "decoder": "Unet", "init": "imagenet"}
    path = tmp_path / "offline.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MICROSWEEP_CACHE": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-m", "search", "sweep", str(path)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    errors = [ln for ln in out.stderr.splitlines() if ln.startswith("microsweep: error:")]
    assert len(errors) == 1 and "no trial trained (1 infeasible)" in errors[0], errors
    assert "imagenet" in errors[0].lower() or "offline" in errors[0].lower()
