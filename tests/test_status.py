"""`microsweep status RUN`: the state of a sweep from its run folder alone (local or S3)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import results as R
from analysis.status import PLANNED_EPOCHS, PLANNED_TRIALS, format_status, read_status
from analysis.synthetic import make_fake_run
from core import storage
from search.cli import main


def fake_run(path, **planned):
    run = make_fake_run(path, seeds=(0, 1), error_fraction=0.2, diverge_fraction=0.1)
    info = json.loads((run / R.RUN_FILE).read_text())
    storage.write_json(run / R.RUN_FILE, {**info, **planned})
    return run


def test_status_of_a_finished_run_counts_best_and_failures(tmp_path, capsys):
    run = fake_run(tmp_path / "run")
    rows = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    storage.write_json(run / R.RUN_FILE, {**json.loads((run / R.RUN_FILE).read_text()),
                                          PLANNED_TRIALS: len(rows)})  # fmt: skip
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    failed = [r for r in rows if r[R.STATUS] in (R.ERRORED, R.DIVERGED)]
    assert failed, "the fake run should hold failures"
    done = sum(r[R.STATUS] == R.COMPLETED for r in rows)
    assert f"{len(rows)}/{len(rows)} ended ({done} completed" in out and "0 pending" in out
    assert f"{len(failed)} failed" in out and "finished" in out
    for row in failed:
        assert row[R.TRIAL] in out and (row[R.ERROR] or "no reason recorded") in out
    best = max((r for r in rows if r[R.VAL_IOU] == r[R.VAL_IOU] and r[R.STATUS] != R.DIVERGED
                and r[R.VAL_IOU] is not None),
               key=lambda r: r[R.VAL_IOU])  # fmt: skip
    assert f"best val_iou: {best[R.VAL_IOU]:.4f}" in out and best[R.TRIAL] in out


def test_status_of_a_run_being_written_shows_running_trials_pending_and_eta(tmp_path):
    run = fake_run(tmp_path / "run", created="2026-01-01T00:00:00+00:00")
    trials = pq.read_table(run / R.TRIALS_FILE)
    rows = trials.to_pylist()
    running = rows[:3]  # their epochs are written, their rows not yet (still training)
    storage.write_parquet(run / R.TRIALS_FILE, trials.slice(3))
    info = json.loads((run / R.RUN_FILE).read_text())
    epochs = pq.read_table(run / R.EPOCHS_FILE).num_rows
    info.update({PLANNED_TRIALS: len(rows) + 2, PLANNED_EPOCHS: epochs * 2})
    storage.write_json(run / R.RUN_FILE, info)
    import datetime

    now = datetime.datetime(2026, 1, 1, 1, 0, tzinfo=datetime.timezone.utc)  # an hour in
    snap = read_status(run, now=now)
    assert set(snap.running) == {r[R.TRIAL] for r in running}
    assert snap.pending == 2 and not snap.finished
    assert snap.eta_s() == pytest.approx(3600)  # half of the planned trial-epochs in an hour
    text = format_status(snap)
    assert "running:" in text and "ETA 1:00:00" in text
    assert all(f"{r[R.TRIAL]}  epoch " in text for r in running)


def test_a_recommend_runs_confirm_stage_is_counted_apart_from_the_searchs_plan(tmp_path):
    """run.json's plan is the search's: confirm trials (one ended, one training; epoch rows
    with a stage, and older ones without) are a line of their own, not 'N/M ended' above it."""
    run = fake_run(tmp_path / "run")
    rows = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    epochs = pq.read_table(run / R.EPOCHS_FILE).to_pylist()
    info = json.loads((run / R.RUN_FILE).read_text())
    plan = {PLANNED_TRIALS: len(rows), PLANNED_EPOCHS: len(epochs)}
    storage.write_json(run / R.RUN_FILE, {**info, **plan})
    done = {**rows[0], R.TRIAL: "confirm-a", R.STAGE: R.CONFIRM, R.STATUS: R.COMPLETED}
    storage.write_parquet(run / R.TRIALS_FILE, pa.Table.from_pylist(
        [{**r, R.STAGE: R.SEARCH} for r in rows] + [done]))  # fmt: skip
    extra = [{**epochs[0], R.TRIAL: "confirm-a"},  # written before epoch rows had a stage
             {**epochs[0], R.TRIAL: "confirm-b", R.STAGE: R.CONFIRM}]  # fmt: skip
    storage.write_parquet(run / R.EPOCHS_FILE, pa.Table.from_pylist(
        [{**e, R.STAGE: None} for e in epochs] + extra))  # fmt: skip
    snap = read_status(run)
    assert snap.finished and snap.ended == len(rows) and not snap.running
    assert snap.epochs_done == len(epochs)
    text = format_status(snap)
    assert f"{len(rows)}/{len(rows)} ended" in text
    assert "confirm: 1 ended (1 completed, 0 stopped, 0 failed), 1 running" in text


def test_status_of_something_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "is not a run folder" in err and len(err.strip().splitlines()) == 1


def test_a_configuration_shows_sampled_floats_to_four_digits():
    """The live line, status and the report's answer alike."""
    from analysis.answer import config_text
    from analysis.status import describe

    config = {"decoder": "FPN", "lr": 0.00010387897017867198, "bce_weight": 0.5163894095744779}
    assert describe(config, ["decoder", "bce_weight", "lr"], "t1") == (
        "decoder=FPN bce_weight=0.5164 lr=0.0001039"
    )
    assert config_text(config) == "decoder=FPN, lr=0.0001039, bce_weight=0.5164"
