"""GPU scheduling without GPUs: Ray with fake GPU resources, one node and a two-node cluster.

Each scenario runs in its own process (its own Ray runtime, apart from the shared one)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import results as R

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def scenario(name: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.sweep_helpers", name, str(tmp_path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]


def logs(tmp_path: Path, name: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in (tmp_path / f"log-{name}").glob("*.json")]


def max_overlap(entries: list[dict]) -> int:
    events = sorted([(e["start"], 1) for e in entries] + [(e["end"], -1) for e in entries])
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


def overlapping(a: dict, b: dict) -> bool:
    return a["start"] < b["end"] and b["start"] < a["end"]


def test_whole_and_half_gpus_on_one_node(tmp_path):
    scenario("one-node", tmp_path)
    whole = logs(tmp_path, "whole")
    assert len(whole) == 4 and max_overlap(whole) == 2
    assert all(e["cuda"] in ("0", "1") for e in whole)
    for i, a in enumerate(whole):  # trials running together see different GPUs
        for b in whole[i + 1 :]:
            if overlapping(a, b):
                assert a["cuda"] != b["cuda"]
    half = logs(tmp_path, "half")
    assert len(half) == 8 and max_overlap(half) == 4
    assert {e["cuda"] for e in half} == {"0", "1"}
    rows = pq.read_table(tmp_path / "runs" / "half" / R.TRIALS_FILE).to_pylist()
    assert {r[R.GPU] for r in rows} == {0.5}


def test_two_nodes_stopped_trials_free_their_gpu(tmp_path):
    scenario("two-nodes", tmp_path)
    entries = logs(tmp_path, "nodes")
    assert len(entries) == 8 and max_overlap(entries) <= 2
    assert all(e["cuda"] == "0" for e in entries)  # one GPU per node, each trial sees its own
    rows = pq.read_table(tmp_path / "runs" / "nodes" / R.TRIALS_FILE).to_pylist()
    stopped = [r for r in rows if r[R.STATUS] == R.STOPPED]
    assert stopped, "ASHA stopped no trial"
    # a trial started after a stopped one ended: its GPU was given to the next trial
    ends = sorted(e["end"] for e in entries if e["epoch"] < 4)
    assert any(e["start"] >= ends[0] for e in entries)
    assert len({r[R.NODE] for r in rows}) >= 1
