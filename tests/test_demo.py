import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from analysis import results as R

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quick_demo_pretrains_sweeps_and_reports(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "search.demo", "--out", str(tmp_path), "--quick"],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    rows = pq.read_table(tmp_path / "runs" / "demo" / R.TRIALS_FILE).to_pylist()
    # one init value names each encoder's own pretrained zoo entry
    assert sorted(r["init"] for r in rows) == ["none", "zoo:demo-{encoder}"]
    assert {r[R.STATUS] for r in rows} <= {R.COMPLETED, R.STOPPED}
    manifest = json.loads((tmp_path / "zoo" / "manifest.json").read_text())
    assert "demo-resnet18" in json.dumps(manifest)
    assert (tmp_path / "report" / "report.html").is_file()
    # the quick demo's 2 trials are too few to rank factors: the section says why, in one line
    importance = json.loads((tmp_path / "report" / "summary.json").read_text())["importance"]
    (reason,) = importance["not_computed"].values()
    assert reason.startswith("too few completed trials") and not importance["rows"]
    assert "## What mattered" in (tmp_path / "report" / "report.md").read_text()
    assert f"microsweep report {tmp_path / 'runs' / 'demo'}" in out.stdout
    # a console people can read (issue 12): a few dozen lines, Ray's own output in the run folder
    printed = (out.stdout + out.stderr).splitlines()
    assert len(printed) <= 60, "\n".join(printed)
    assert "Fatal Python error" not in out.stdout + out.stderr
    assert sum(line.startswith("ended ") for line in printed) == len(rows)
    logs = list((tmp_path / "runs" / "demo" / R.LOGS_DIR).glob("ray-*.log"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0
