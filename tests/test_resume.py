"""``--resume`` after the driver is SIGKILLed; refusal of a truncated state file."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analysis import results as R
from analysis.storage import Location
from search.cli import main
from search.resume import newest_state_file

REPO = Path(__file__).resolve().parents[1]
DECODERS = ["Unet", "FPN", "Linknet", "PSPNet"]


def write_experiment(tmp_path: Path, storage: str | None = None) -> Path:
    raw = {
        "name": "res",
        "kind": "tests.sweep_helpers:toy_trainable",
        "space": {"decoder": DECODERS},
        "repeats": 2,
        "scheduler": {"name": "fifo", "max_epochs": 5},
        "train": {"sleep": 0.5},
        "storage": storage or str(tmp_path / "runs"),
    }
    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sweep(path: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "search", "sweep", str(path), *extra],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: we end what it started, nothing else
    )  # fmt: skip


def finished(run: Location) -> list[dict]:
    path = run / R.TRIALS_FILE
    return path.read_table().to_pylist() if path.is_file() else []


def kill_and_resume(path: Path, run: Location) -> None:
    """SIGKILL the sweep's driver once 2 of its 8 trials finished, ``--resume`` it, and check
    that the same trial set completes: none lost or doubled, finished ones not re-run."""
    driver = sweep(path)
    deadline = time.monotonic() + 240
    while len(finished(run)) < 2 and time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.5)
    before = {r[R.TRIAL]: r for r in finished(run)}
    assert driver.poll() is None and 2 <= len(before) < 8, "the sweep ended before the kill"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    resumed = sweep(path, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    rows = finished(run)
    configs = sorted((r["decoder"], r[R.SEED]) for r in rows)
    assert configs == sorted((d, s) for d in DECODERS for s in (0, 1))  # none lost or doubled
    odd = [(r[R.TRIAL], r[R.STATUS], r[R.EPOCHS], r[R.ERROR]) for r in rows
           if (r[R.STATUS], r[R.EPOCHS]) != (R.COMPLETED, 5)]  # fmt: skip
    assert not odd, odd
    after = {r[R.TRIAL]: r for r in rows}
    for name, row in before.items():  # finished trials were not re-run
        assert after[name][R.WALL_S] == row[R.WALL_S]
    epochs = (run / R.EPOCHS_FILE).read_table().to_pylist()
    assert len(epochs) == 8 * 5 and len({(e[R.TRIAL], e[R.EPOCH]) for e in epochs}) == 40
    assert "microsweep report" in out


@pytest.mark.slow
def test_sigkilled_driver_resumes_the_same_trial_set(tmp_path):
    kill_and_resume(write_experiment(tmp_path), Location.parse(str(tmp_path / "runs" / "res")))


def test_truncated_state_file_refuses_in_one_line(tmp_path, capsys):
    path = write_experiment(tmp_path)
    run_dir = tmp_path / "runs" / "res"
    run_dir.mkdir(parents=True)
    (run_dir / "tuner.pkl").write_bytes(b"not used")
    state = run_dir / "experiment_state-2026-01-01_00-00-00.json"
    state.write_text('{"trial_data": ["{\\"stub\\": false, ')
    assert str(newest_state_file(run_dir)) == str(state)
    assert main(["sweep", str(path), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(state) in err[0] and "truncated" in err[0]
    assert sorted(p.name for p in run_dir.iterdir()) == [state.name, "tuner.pkl"]  # untouched


def test_resume_without_a_run_refuses(tmp_path, capsys):
    path = write_experiment(tmp_path)
    assert main(["sweep", str(path), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
