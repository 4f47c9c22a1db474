"""``build_report`` / ``microsweep report`` on fake run folders: files, numbers, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import ReportError, build_report, load_runs
from analysis import results as R
from analysis.figures import FN, FP, TN, TP, WRONG_CLASS, accuracy_map
from analysis.synthetic import FakeRunSpec, make_fake_run
from search.cli import main

FACTORS = {"init": ["none", "imagenet", "micronet"], "decoder": ["Unet", "FPN"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("runs")
    spec = FakeRunSpec(factors=FACTORS, max_epochs=8, rungs=(2, 4), images_per_split=2)
    return [
        make_fake_run(root / "super1", spec, dataset="Super-1", predictions=True),
        make_fake_run(root / "ebc1", spec, dataset="EBC-1", seed=1, experiment="ebc"),
    ]


@pytest.fixture(scope="module")
def report(runs, tmp_path_factory) -> Path:
    # importance intervals (100 fANOVA refits per dataset) are tested in test_importance.py
    return build_report(runs, out=tmp_path_factory.mktemp("rep") / "report", importance_boot=0)


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_report_writes_every_output(report):
    names = set(files(report))
    assert {"report.md", "report.html", "summary.json"} <= names
    for table in ("iou_by_init", "iou_by_decoder", "status_by_init", "top_by_init", "runs"):
        assert {f"tables/{table}.csv", f"tables/{table}.tex"} <= names
    assert {"figures/iou_by_init.png", "figures/learning_curves.png"} <= names
    assert "figures/accuracy_Super-1.png" in names  # only this run has predictions
    assert "figures/accuracy_EBC-1.png" not in names
    assert not [n for n in names if n.endswith(".tmp")]


def test_tables_agree_with_the_parquet(runs, report):
    trials = pd.concat([pd.read_parquet(r / R.TRIALS_FILE) for r in runs])
    done = trials[trials[R.STATUS] == R.COMPLETED]
    expect = (
        (done[R.TEST_IOU] * 100)
        .groupby([done["init"], done[R.DATASET]])
        .agg(["count", "mean", "std"])
    )
    table = pd.read_csv(report / "tables" / "iou_by_init.csv").set_index(["init", R.DATASET])
    assert len(table) == 3 * 2
    for key, row in expect.iterrows():
        assert table.loc[key, "n"] == row["count"]
        assert table.loc[key, "mean"] == pytest.approx(row["mean"])
        assert table.loc[key, "std"] == pytest.approx(row["std"], nan_ok=True)
    summary = json.loads((report / "summary.json").read_text())
    first = summary["tables"]["init"][0]
    assert first["mean"] == pytest.approx(table.loc[(first["init"], first[R.DATASET]), "mean"])
    assert summary["std"] == "sample standard deviation (ddof=1)"


def test_status_table_counts_every_trial(runs, report):
    trials = pd.concat([pd.read_parquet(r / R.TRIALS_FILE) for r in runs])
    status = pd.read_csv(report / "tables" / "status_by_init.csv", index_col=0)
    assert status["total"].sum() == len(trials)
    assert (
        status.loc["imagenet", R.STOPPED]
        == ((trials["init"] == "imagenet") & (trials[R.STATUS] == R.STOPPED)).sum()
    )


def test_markdown_and_html_show_the_same_cells(report):
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    cells = re.findall(r"\d+\.\d±\d+\.\d \(n=\d+\)", md)
    assert cells and all(c in html for c in cells)
    assert "sample standard deviation (ddof=1)" in md
    assert "![" in md and "](figures/iou_by_init.png)" in md


def test_html_is_self_contained(report):
    html = (report / "report.html").read_text()
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<link" not in html and "http" not in html


def test_report_is_deterministic(runs, report, tmp_path):
    again = build_report(runs, out=tmp_path / "again", importance_boot=0)
    assert files(again) == files(report)
    with Image.open(report / "figures" / "iou_by_init.png") as png:
        assert "Software" not in png.info


def test_comparison_of_init_sources_is_in_summary(report):
    summary = json.loads((report / "summary.json").read_text())
    (comp,) = summary["comparisons"]
    assert (comp["factor"], comp["a"], comp["b"]) == ("init", "imagenet", "micronet")
    for row in comp["top_models"]:
        a, b = row["top imagenet"], row["top micronet"]
        assert row["error reduction %"] == pytest.approx((b - a) / (100 - a) * 100, abs=1e-4)
    pooled = comp["paired"][-1]
    assert pooled[R.DATASET] == "(all)" and pooled["n_pairs"] > 0
    assert pooled["ci_low"] <= pooled["mean_diff"] <= pooled["ci_high"]


def test_include_stopped_is_labelled(runs, tmp_path):
    out = build_report(
        runs,
        by=["init"],
        out=tmp_path / "r",
        include_stopped=True,
        accuracy_maps=False,
        importance_boot=0,
    )
    md = (out / "report.md").read_text()
    assert "ASHA-stopped trials are **included**" in md
    long = pd.read_csv(out / "tables" / "iou_by_init.csv")
    trials = pd.concat([pd.read_parquet(r / R.TRIALS_FILE) for r in runs])
    n_in = trials[R.STATUS].isin([R.COMPLETED, R.STOPPED]).sum()
    assert long["n"].sum() == n_in


def test_rerun_with_other_options_removes_stale_tables(runs, tmp_path):
    out = build_report(
        runs, by=["decoder"], out=tmp_path / "r", accuracy_maps=False, importance_boot=0
    )
    assert (out / "tables" / "iou_by_decoder.csv").exists()
    build_report(runs, by=["init"], out=out, accuracy_maps=False, importance_boot=0)
    assert not (out / "tables" / "iou_by_decoder.csv").exists()
    assert (out / "tables" / "iou_by_init.csv").exists()


def test_accuracy_map_colours():
    truth = np.array([[0, 1, 1], [0, 2, 0]])
    pred = np.array([[0, 1, 0], [1, 1, 0]])
    rgb = accuracy_map(truth, pred)
    assert [tuple(p) for p in rgb.reshape(-1, 3)] == [TN, TP, FN, FP, WRONG_CLASS, TN]
    assert TP == (255, 255, 255) and FP == (0, 255, 255) and FN == (255, 0, 255)


def test_not_a_run_folder_is_one_clear_error(tmp_path):
    with pytest.raises(ReportError, match="is not a run folder"):
        load_runs([tmp_path])
    with pytest.raises(ReportError, match="does not exist"):
        load_runs([tmp_path / "nope"])
    (tmp_path / R.RUN_FILE).write_text("{broken")
    with pytest.raises(ReportError, match=r"run\.json is not valid JSON"):
        load_runs([tmp_path])


def test_folder_of_runs_and_uris_load(runs):
    both = load_runs([runs[0].parent])
    assert sorted(both[R.DATASET].unique()) == ["EBC-1", "Super-1"]
    one = load_runs([runs[0].as_uri()])  # file:///... through pyarrow.fs
    assert len(one) == len(pd.read_parquet(runs[0] / R.TRIALS_FILE))


def test_cli_report(runs, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "report",
            str(runs[0]),
            str(runs[1]),
            "--by",
            "init,init+decoder",
            "--out",
            str(out),
            "--no-maps",
            "--compare",
            "init:none:micronet",
            "--importance-boot",
            "0",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    assert (out / "tables" / "iou_by_init_decoder.csv").exists()
    assert (out / "tables" / "paired_init_none_vs_micronet.csv").exists()
    assert main(["report", str(runs[0]), "--by", "encoder", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "microsweep: error: unknown factor 'encoder'; choose from: decoder, init"


@pytest.mark.slow
def test_report_of_a_real_sweep(tmp_path, ray_local, capsys):
    """A tiny real sweep (Ray Tune, our results writer, a toy trainable that follows the
    reporting contract), then `microsweep report`: the files exist and agree with the Parquet."""
    sweep = pytest.importorskip("search.launch")
    from search.experiment import parse_experiment

    raw = {
        "name": "tiny",
        "kind": "tests.sweep_helpers:toy_trainable",
        "space": {"decoder": ["Unet", "FPN"], "init": ["imagenet", "micronet"], "sleep": 0.0},
        "repeats": 2,
        "search": {"algorithm": "grid"},
        "scheduler": {"name": "fifo", "max_epochs": 3},
        "resources": {"cpu": 1, "gpu": 0},
        "storage": str(tmp_path / "runs"),
    }
    result = sweep.run_sweep(parse_experiment(raw, base_dir=tmp_path))
    out = tmp_path / "report"
    capsys.readouterr()  # Ray's progress table
    assert main(["report", str(result.run_dir), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "report.html")
    trials = pd.read_parquet(result.run_dir / R.TRIALS_FILE)
    assert len(trials) == 8 and set(trials[R.STATUS]) == {R.COMPLETED}
    table = pd.read_csv(out / "tables" / "iou_by_decoder.csv").set_index("decoder")
    for decoder, group in trials.groupby("decoder"):
        assert table.loc[decoder, "n"] == 4
        assert table.loc[decoder, "mean"] == pytest.approx(group[R.TEST_IOU].mean() * 100)
        assert table.loc[decoder, "std"] == pytest.approx(group[R.TEST_IOU].std() * 100)
    summary = json.loads((out / "summary.json").read_text())
    pooled = summary["comparisons"][0]["paired"][-1]
    assert pooled["n_pairs"] == 4  # each (decoder, seed) pairs imagenet with micronet
    assert {"report.md", "report.html"} <= set(files(out))
