"""Faults a sweep survives: worker nodes lost mid-trial (a local Ray cluster per scenario, in a
fresh process each), and storage that fails (docs/faults.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import results as R

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_EVERY = 2  # tests.fault_helpers.experiment


def scenario(name: str, tmp_path: Path, *extra: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.fault_helpers", name, str(tmp_path), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


def attempts(tmp_path: Path, name: str) -> dict[str, list[list[dict]]]:
    """Per trial id: its attempts (a process each), each the list of its logged events."""
    out = {}
    for log in (tmp_path / f"log-{name}").glob("*.jsonl"):
        runs: list[list[dict]] = []
        for entry in map(json.loads, log.read_text().splitlines()):
            if entry["event"] == "start":
                runs.append([])
            runs[-1].append(entry)
        out[log.stem] = runs
    return out


def check_node_loss(
    tmp_path: Path, name: str, *, max_epochs: int, rungs: list[int], from_checkpoint: bool
) -> None:
    """The invariants of a sweep that lost nodes (see docs/faults.md); ``from_checkpoint``:
    some trial was killed after a checkpoint (else a kill may hit only first epochs)."""
    kills = json.loads((tmp_path / f"kills-{name}.json").read_text())
    assert kills, "no node was killed"
    run = tmp_path / "runs" / name
    trials = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    epochs = pq.read_table(run / R.EPOCHS_FILE).to_pylist()
    logs = attempts(tmp_path, name)
    assert len(trials) == len(logs)
    by_id = {"_".join(t[R.TRIAL].rsplit("_", 2)[-2:]): t for t in trials}
    assert set(by_id) == set(logs)
    bad = [(t[R.TRIAL], t[R.STATUS], t[R.ERROR]) for t in trials
           if t[R.STATUS] not in (R.COMPLETED, R.STOPPED)]  # fmt: skip
    assert not bad, bad
    pairs = [(e[R.TRIAL], e[R.EPOCH]) for e in epochs]
    assert len(pairs) == len(set(pairs))  # exactly one row per trial-epoch
    assert sorted(pairs) == sorted(
        (t[R.TRIAL], n) for t in trials for n in range(1, t[R.EPOCHS] + 1)
    )
    restored, resumed = 0, 0
    for trial_id, runs in logs.items():
        row = by_id[trial_id]
        begun = 0  # the furthest epoch any earlier attempt began
        reported = 0  # the furthest epoch any earlier attempt reported
        for attempt in runs:
            start = attempt[0]["restored"]
            if attempt is not runs[0]:
                restored += 1
                assert start >= begun - CHECKPOINT_EVERY, (trial_id, start, begun)  # redone
                resumed += start > 0
            begun = max([begun] + [e["epoch"] for e in attempt if e["event"] == "begin"])
            reported = max([reported] + [e["epoch"] for e in attempt if e["event"] == "report"])
        if row[R.STATUS] == R.COMPLETED:
            assert row[R.EPOCHS] == max_epochs
        else:  # stopped by ASHA at a rung, and never at one it had already been let past
            assert row[R.EPOCHS] in rungs, (row[R.TRIAL], row[R.EPOCHS], rungs)
            assert reported <= row[R.EPOCHS] or len(runs) == 1, (trial_id, reported, runs)
    assert restored >= 1, "no trial was restored after the node loss"
    assert resumed >= 1 or not from_checkpoint, "no trial continued from a checkpoint"


@pytest.mark.slow
def test_worker_node_lost_mid_trial_resumes_from_checkpoint(tmp_path):
    scenario("fifo", tmp_path)
    check_node_loss(tmp_path, "fifo", max_epochs=5, rungs=[], from_checkpoint=True)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])
def test_asha_sweep_survives_nodes_killed_on_a_random_schedule(tmp_path, seed):
    scenario("asha", tmp_path, str(seed))
    check_node_loss(tmp_path, "asha", max_epochs=4, rungs=[1, 2], from_checkpoint=False)
