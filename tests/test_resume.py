"""``--resume`` after the driver is SIGKILLed; refusal of a truncated state file."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from analysis import results as R
from core.storage import Location
from search.cli import main
from search.repair import BACKUP_SUFFIX
from search.resume import newest_state_file
from trainables.report_file import REPORT_FILE, parse_report

REPO = Path(__file__).resolve().parents[1]
DECODERS = ["Unet", "FPN", "Linknet", "PSPNet"]
# epochs of kill_and_resume's sweeps: a trial's worker takes seconds to start, so 8 trials of
# 5 epochs leave the kill (2 finished, 6 not) a window of seconds also with short epochs
KILL_SLEEP = 0.2


def write_experiment(tmp_path: Path, storage: str | None = None, sleep: float = 0.5) -> Path:
    raw = {
        "name": "res",
        "kind": "tests.sweep_helpers:toy_trainable",
        "space": {"decoder": DECODERS},
        "repeats": 2,
        "scheduler": {"name": "fifo", "max_epochs": 5},
        "train": {"sleep": sleep},
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
    path = write_experiment(tmp_path, sleep=KILL_SLEEP)
    kill_and_resume(path, Location.parse(str(tmp_path / "runs" / "res")))


@pytest.mark.slow
def test_resume_from_a_snapshot_naming_deleted_checkpoints(tmp_path):
    """Ray deletes a trial's old checkpoints (num_to_keep) before its next state snapshot is
    stored; a driver killed in between leaves a snapshot naming deleted checkpoints (seen on S3).
    Simulated by putting an older snapshot back: such trials continue from their newest
    checkpoint, none fails, and the epochs the killed driver had not written are filled in."""
    path = write_experiment(tmp_path, sleep=1.0)
    run = Location.parse(str(tmp_path / "runs" / "res"))
    driver = sweep(path)
    stale, watched, named = _snapshot_after_first_checkpoint(run, driver)
    deadline = time.monotonic() + 120
    while any((run / watched / c).is_dir() for c in named) and time.monotonic() < deadline:
        time.sleep(0.1)  # until Ray deleted the checkpoints the stale snapshot can name
    assert driver.poll() is None, "the sweep ended before the kill"
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    _wait_until_session_ended(driver.pid)  # trial workers have process groups of their own
    state = newest_state_file(run)
    state.write_bytes(stale)
    newest = _newest_complete_epochs(run)
    resumed = sweep(path, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    named = re.findall(r"resume: trial (\S+): checkpoint_\d+ \(named by Ray", out)
    assert watched in named, out[-3000:]  # finished ones say so; the others continue:
    repaired = dict(re.findall(r"trial (\S+): .* continues from \S+ \(epoch (\d+)\)", out))
    assert {t: int(e) for t, e in repaired.items()} == {t: newest[t] for t in repaired}
    assert (run / (state.name + BACKUP_SUFFIX)).read_bytes() == stale
    rows = finished(run)
    assert sorted((r["decoder"], r[R.SEED]) for r in rows) == sorted(
        (d, s) for d in DECODERS for s in (0, 1)
    )
    assert {(r[R.STATUS], r[R.EPOCHS]) for r in rows} == {(R.COMPLETED, 5)}, rows
    epochs = (run / R.EPOCHS_FILE).read_table().to_pylist()
    assert sorted((e[R.TRIAL], e[R.EPOCH]) for e in epochs) == sorted(
        (r[R.TRIAL], n) for r in rows for n in range(1, 6)
    )


def _snapshot_after_first_checkpoint(
    run: Location, driver: subprocess.Popen
) -> tuple[bytes, str, list[str]]:
    """Ray's state file as stored after a trial's first checkpoint, that trial, and its
    checkpoint folders then (the snapshot names one of them, or one deleted before)."""
    deadline = time.monotonic() + 240
    seen, watched = 0.0, None
    while time.monotonic() < deadline and driver.poll() is None:
        time.sleep(0.1)
        state = newest_state_file(run)
        if watched is None:
            ready = [t.name for t in run.glob("*_0000*") if (t / "checkpoint_000000").is_dir()]
            watched, seen = (ready[0], time.time()) if ready else (None, 0.0)
        elif state is not None and Path(str(state)).stat().st_mtime > seen + 0.5:
            data = state.read_bytes()
            try:
                json.loads(data)  # not caught half-written
            except ValueError:
                continue
            return data, watched, [c.name for c in (run / watched).glob("checkpoint_*")]
    raise AssertionError(f"no snapshot after a first checkpoint: {driver.poll()=}")


def _wait_until_session_ended(sid: int, timeout: float = 60.0) -> None:
    """Wait until no process of session ``sid`` is left (Linux /proc)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended while we looked
            alive += [stat.parent.name] if int(fields[3]) == sid else []
        if not alive:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes of session {sid} outlived the kill by {timeout} s: {alive}")


def _newest_complete_epochs(run: Location) -> dict[str, int]:
    """Each trial folder's newest complete checkpoint (report and files whole): its epoch."""
    newest = {}
    for trial in run.glob("*_0000*"):
        for checkpoint in reversed(trial.glob("checkpoint_*")):
            report = checkpoint / REPORT_FILE
            parsed = parse_report(report.read_bytes()) if report.is_file() else None
            if parsed and all((checkpoint / f).size() == n for f, n in parsed[1].items()):
                newest[trial.name] = parsed[0]["epoch"]
                break
    return newest


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


@pytest.mark.slow
def test_ctrl_c_says_interrupted_exits_130_and_resume_completes(tmp_path):
    """Ctrl+C (SIGINT to the terminal's process group) mid-sweep: Tune saves its state and
    returns; the sweep says it was interrupted, not "no trial trained", and --resume ends it."""
    raw = yaml.safe_load(write_experiment(tmp_path).read_text())
    raw.update(space={"decoder": ["Unet", "FPN"]}, repeats=1)
    path = tmp_path / "res.yaml"
    path.write_text(yaml.safe_dump(raw))
    run = Location.parse(str(tmp_path / "runs" / "res"))
    driver = sweep(path)
    deadline = time.monotonic() + 240
    while driver.poll() is None and time.monotonic() < deadline:
        if any((t / "checkpoint_000000").is_dir() for t in run.glob("*_0000*")):
            break
        time.sleep(0.2)
    assert driver.poll() is None, "the sweep ended before Ctrl+C"
    os.killpg(driver.pid, signal.SIGINT)
    out, _ = driver.communicate(timeout=240)
    assert driver.returncode == 130, out[-3000:]
    lines = [ln for ln in out.splitlines() if ln.startswith("microsweep: interrupted")]
    assert len(lines) == 1 and "--resume" in lines[0], out[-3000:]
    assert "no trial trained" not in out
    resumed = sweep(path, "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out[-3000:]
    assert {(r["decoder"], r[R.STATUS], r[R.EPOCHS]) for r in finished(run)} == {
        ("Unet", R.COMPLETED, 5), ("FPN", R.COMPLETED, 5)
    }  # fmt: skip
