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
    # one init value names each encoder's own pretrained zoo entry; 2 decoders x 3 seeds each
    assert sorted({r["init"] for r in rows}) == ["none", "zoo:demo-{encoder}"]
    assert len(rows) == 12 and {r[R.STATUS] for r in rows} == {R.COMPLETED}
    manifest = json.loads((tmp_path / "zoo" / "manifest.json").read_text())
    assert "demo-resnet18" in json.dumps(manifest)
    assert (tmp_path / "report" / "report.html").is_file()
    # enough completed trials to rank factors (issue 15): "What mattered" with its numbers
    importance = json.loads((tmp_path / "report" / "summary.json").read_text())["importance"]
    assert not importance["not_computed"], importance["not_computed"]
    ranked = {(r["factor"], r["evaluator"]) for r in importance["rows"]}
    assert ranked == {(f, e) for f in ("decoder", "init") for e in ("fanova", "ped_anova")}
    assert all(r["n_trials"] == 12 for r in importance["rows"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    section = markdown.split("## What mattered", 1)[1].split("\n## ", 1)[0]
    assert "too few" not in section and "| decoder" in section and "| init" in section
    assert f"microsweep report {tmp_path / 'runs' / 'demo'}" in out.stdout
    # a console people can read (issue 12): a few dozen lines, Ray's own output in the run folder
    printed = (out.stdout + out.stderr).splitlines()
    assert len(printed) <= 60, "\n".join(printed)
    assert "Fatal Python error" not in out.stdout + out.stderr
    assert sum(line.startswith("ended ") for line in printed) == len(rows)
    # its pretraining in one line per encoder, not one per epoch (make demo: 10 epochs each)
    assert not any(line.startswith("epoch ") for line in printed)
    summary = [line for line in printed if "zoo encoder demo-resnet18: val top-1 " in line]
    assert len(summary) == 1 and " -> " in summary[0], printed
    logs = list((tmp_path / "runs" / "demo" / R.LOGS_DIR).glob("ray-*.log"))
    assert len(logs) == 1 and logs[0].stat().st_size > 0


def test_make_demo_pretrains_every_encoder_with_its_epochs_in_one_line_each(
    tmp_path, monkeypatch, capsys
):
    """The full demo pretrains 2 encoders for 10 epochs each (no Ray here: run_pretrain is
    replaced by one that prints the epoch lines a real run prints)."""
    from types import SimpleNamespace

    from search import demo

    seen = []

    def fake_run_pretrain(data, config, *, storage, printer):
        seen.append({**config, "storage": storage})
        for epoch in range(1, config["max_epochs"] + 1):
            printer(f"epoch {epoch:3d}  train_loss 1.0  val_top1 {epoch / 100:.4f}  1s")
        return SimpleNamespace(name=config["zoo_name"], val_top1=config["max_epochs"] / 100)

    monkeypatch.setattr("search.pretrain.run_pretrain", fake_run_pretrain)
    demo.pretrain(tmp_path / "mn", tmp_path / "zoo", quick=False)
    assert [(c["encoder"], c["max_epochs"]) for c in seen] == [(e, 10) for e in demo.ENCODERS]
    assert len({c["storage"] for c in seen}) == 2  # a run folder each: the logs it named stay
    printed = capsys.readouterr().out
    assert "zoo encoder demo-mobilenet_v2: val top-1 0.0100 -> 0.1000 in 10 epoch(s)" in printed
    assert "epoch " not in printed.replace("epoch(s)", "")
