"""The console of a sweep: one line per trial end and failure, a bounded live line, Ray's
output in the run folder, and stopped trials that end without abort dumps."""

from __future__ import annotations

import functools
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from analysis import results as R
from analysis.status import read_status
from search.console import Console, ray_output, ray_verbosity, terminal

REPO = Path(__file__).resolve().parents[1]


def trial(name: str, decoder: str, status: str = "RUNNING", error: str = "") -> SimpleNamespace:
    return SimpleNamespace(trial_name=name, config={"decoder": decoder, "lr": 1e-3},
                           status=status, error_msg=error, error_file=None)  # fmt: skip


def epoch(n: int, val: float) -> dict:
    return {"epoch": n, "val_iou": val, "train_loss": 1 - val, "training_iteration": n}


def play(console: Console) -> list[SimpleNamespace]:
    """Four trials: one completes, one is stopped by ASHA, one diverges, one raises."""
    a, b, c, d = (trial(f"t{i}", dec) for i, dec in enumerate(["Unet", "FPN", "Linknet", "PSP"]))
    trials = [a, b, c, d]
    console.setup()
    for step in range(1, 3):
        for t in (a, b):
            console.on_trial_result(step, trials, t, epoch(step, 0.4 * step if t is a else 0.3))
        console.on_step_end(step, trials)
    b.status = "TERMINATED"
    console.on_trial_complete(3, trials, b)
    console.on_trial_result(3, trials, c, {"diverged": True, "epoch": 1, "error": "loss is nan"})
    c.status = "TERMINATED"
    console.on_trial_complete(3, trials, c)
    d.status, d.error_msg = "ERROR", "Traceback ...\nRuntimeError: boom at epoch 2"
    console.on_trial_error(4, trials, d)
    final = {**epoch(3, 0.85), "done": True, "best_epoch": 3, "best_val_iou": 0.85}
    console.on_trial_result(5, trials, a, final)
    a.status = "TERMINATED"
    console.on_trial_complete(5, trials, a)
    console.on_experiment_end(trials)
    return trials


def test_plain_output_has_one_line_per_end_and_failure_and_few_progress_lines():
    out = io.StringIO()
    play(Console(total_trials=4, trial_epochs=8, factors=["decoder"], out=out, interval_s=3600))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()  # not a TTY: plain lines for CI logs
    ended = [ln for ln in lines if ln.startswith("ended")]
    failed = [ln for ln in lines if ln.startswith("FAILED")]
    assert len(ended) == 2 and len(failed) == 2
    assert "stopped" in ended[0] and "t1" in ended[0] and "2 epochs" in ended[0]
    assert "completed" in ended[1] and "0.8500" in ended[1]
    assert "diverged" in failed[0] and "loss is nan" in failed[0]
    assert "error" in failed[1] and "RuntimeError: boom at epoch 2" in failed[1]
    progress = [ln for ln in lines if ln.startswith("trials ")]
    # the first draw, then nothing before the interval, and the final line
    assert len(progress) == 2
    assert progress[-1].startswith("trials 4/4 ended (1 completed, 1 stopped, 2 failed)")
    assert "best val_iou 0.8500 (decoder=Unet)" in progress[-1] and "done" in progress[-1]


def test_a_tty_gets_one_line_redrawn_in_place():
    out = io.StringIO()
    play(Console(total_trials=4, trial_epochs=8, factors=["decoder"], out=out, tty=True))
    text = out.getvalue()
    assert "\r\x1b[2K" in text  # the live line is erased before an event line or a redraw
    # each event stays on a line of its own, the live line ends as the last, plain line
    assert text.endswith("done\n") and text.count("\n") == 1 + 4 + 1


def test_trials_that_ended_before_a_resume_count_for_the_best():
    out = io.StringIO()
    console = Console(total_trials=3, trial_epochs=6, factors=["decoder"], out=out)
    earlier = [trial(f"t{i}", dec, status="TERMINATED") for i, dec in enumerate(["Unet", "FPN"])]
    earlier[0].last_result = {**epoch(2, 0.5), "best_val_iou": 0.7}  # restored by Ray
    earlier[1].last_result = {**epoch(1, 0.6)}  # stopped: no best reported, its last val IoU
    console.setup()
    console.on_experiment_end([*earlier, trial("t2", "PSPNet", status="PENDING")])
    last = out.getvalue().splitlines()[-1]
    assert "best val_iou 0.7000 (decoder=Unet)" in last and console.snapshot().earlier == 2


def test_the_eta_follows_the_plans_trial_epochs():
    console = Console(total_trials=4, trial_epochs=8, out=io.StringIO())
    trials = [trial("t0", "Unet")]
    console.setup()
    console._start -= 10  # ten seconds for two of eight trial-epochs
    for n in (1, 2):
        console.on_trial_result(n, trials, trials[0], epoch(n, 0.5))
    console.on_step_end(2, trials)
    snap = console.snapshot()
    assert snap.epochs_done == 2 and snap.pending == 3 and snap.running == {"t0": (2, 0.5)}
    assert snap.eta_s() == pytest.approx(30, rel=0.05)


def test_ray_output_goes_to_the_run_folder_and_the_console_keeps_the_terminal(tmp_path, capfd):
    with ray_output(tmp_path / "run") as log:
        assert ray_verbosity() == 0
        print("a box of Ray's")
        os.write(2, b"a worker's stderr line\n")  # C-level writes too
        print("progress", file=terminal(), flush=True)
    print("after")
    seen = capfd.readouterr()
    assert "Ray's output:" in seen.out and "progress" in seen.out and "after" in seen.out
    assert "box" not in seen.out + seen.err and "worker" not in seen.out + seen.err
    assert log.parent == tmp_path / "run" / R.LOGS_DIR
    assert log.read_text() == "a box of Ray's\na worker's stderr line\n"
    with ray_output(tmp_path / "run", verbose=True):
        assert ray_verbosity() == 1


def test_worker_lines_ray_holds_back_or_prints_itself_reach_the_log_not_the_terminal(
    tmp_path, capfd
):
    """Lines Ray's deduplication held back (printed by ray.shutdown at exit) and the raylet's
    messages (printed by Ray's error listener, not through the dispatcher) after a sweep."""
    from ray._private import ray_logging
    from ray._private import worker as ray_worker

    from search.console import _unpark_worker_logs

    dispatcher = ray_logging.global_worker_stdstream_dispatcher
    forward = functools.partial(ray_worker.print_to_stdstream, ignore_prefix=False)
    dispatcher.add_handler("ray_print_logs", forward)  # as ray.init(log_to_driver=True) does
    line = {"ip": "10.0.0.1", "is_err": False, "job": "01", "actor_name": "ImplicitFunc",
            "task_name": None, "lines": ["checkpoint written to /tmp/x"]}  # fmt: skip
    try:
        with ray_output(tmp_path / "run") as log:
            for pid in (7, 8, 9):  # the same line from 3 workers: 2 held back as repeats
                dispatcher.emit({**line, "pid": pid})
        raylet = {"lines": ["A worker died or was killed"], "pid": "raylet", "is_err": False}
        ray_worker.print_to_stdstream(raylet, ignore_prefix=False)  # as Ray's error listener
        for held in ray_worker.stdout_deduplicator.flush():  # what ray.shutdown prints
            ray_worker.print_worker_logs(held, sys.stdout)
    finally:
        _unpark_worker_logs()
        dispatcher.remove_handler("ray_print_logs")
    seen = capfd.readouterr()
    assert "checkpoint written" not in seen.out + seen.err and "worker died" not in seen.out
    text = log.read_text()
    assert "checkpoint written" in text and "repeated 2x" in text and "worker died" in text
    assert ray_worker.print_to_stdstream is forward.func  # Ray's own, back in place


def test_a_late_worker_line_after_the_run_folder_is_removed_is_dropped_quietly(tmp_path, capfd):
    """`microsweep pretrain` without --storage removes its temporary run folder while Ray
    still runs; a late worker line then raised in the handler and Ray printed
    "ERROR ... print_logs: [Errno 2] No such file or directory" on the terminal."""
    import shutil

    from ray._private import ray_logging
    from ray._private import worker as ray_worker

    from search.console import _unpark_worker_logs

    dispatcher = ray_logging.global_worker_stdstream_dispatcher
    forward = functools.partial(ray_worker.print_to_stdstream, ignore_prefix=False)
    dispatcher.add_handler("ray_print_logs", forward)
    line = {"ip": "10.0.0.1", "is_err": False, "job": "01", "actor_name": "ImplicitFunc",
            "task_name": None, "lines": ["a late line"], "pid": 7}  # fmt: skip
    try:
        with ray_output(tmp_path / "run"):
            pass
        shutil.rmtree(tmp_path / "run")
        dispatcher.emit(line)  # it logs a handler's exception as an ERROR line
    finally:
        _unpark_worker_logs()
        dispatcher.remove_handler("ray_print_logs")
    seen = capfd.readouterr()
    assert "a late line" not in seen.out + seen.err and "Errno" not in seen.out + seen.err


def test_console_survives_ray_pickling_it():
    import pickle

    console = Console(total_trials=2, trial_epochs=4, out=sys.stdout)
    restored = pickle.loads(pickle.dumps(console))
    assert restored.out is None and restored.total_trials == 2


@pytest.mark.slow
def test_live_sweep_status_shows_running_trials_and_stopped_trials_end_quietly(tmp_path):
    """A toy ASHA sweep in a subprocess: `microsweep status` sees its running trials; ASHA
    stops trials whose training thread is still in torch code, with no abort dump anywhere."""
    raw = {
        "name": "live", "kind": "tests.sweep_helpers:slow_unwind_trainable",
        "space": {"decoder": ["Unet", "FPN", "Linknet", "PSPNet"]}, "repeats": 1,
        "scheduler": {"name": "asha", "max_epochs": 3, "grace_epochs": 1,
                      "reduction_factor": 3},
        # epochs of 2 s: the results writer writes at most every 5 s, and the status must
        # catch trials while they run also on an idle machine
        "train": {"sleep": 2.0, "unwind_s": 1.0}, "resources": {"cpu": 1},
        "storage": str(tmp_path / "runs"),
    }  # fmt: skip
    path = tmp_path / "live.yaml"
    path.write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_DEDUP_LOGS": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "sweep", str(path)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    run = tmp_path / "runs" / "live"
    seen = None
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (run / R.RUN_FILE).is_file() and (run / R.EPOCHS_FILE).is_file():
                snap = read_status(run)
                if snap.running and not snap.finished:
                    seen = snap
                    break
            time.sleep(0.5)
        output, _ = proc.communicate(timeout=180)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-3000:]
    assert seen is not None, "status never showed a running trial"
    assert seen.planned_trials == 4 and seen.pending is not None and seen.eta_s() is not None
    final = read_status(run)
    assert final.finished and final.counts.get(R.STOPPED), "ASHA stopped no trial"
    logs = sorted((run / R.LOGS_DIR).glob("ray-*.log"))
    assert len(logs) == 1 and "(run_trial pid=" in logs[0].read_text()  # the workers' lines
    for text in (output, logs[0].read_text()):
        assert "Fatal Python error" not in text and "SIGABRT" not in text
    lines = output.splitlines()
    assert len([ln for ln in lines if ln.startswith("ended")]) == 4
    assert len(lines) <= 16, output  # header, 4 ends, a few progress lines, the summary
    assert "pid=" not in output  # worker lines, also those Ray forwards late, stay in the log
