"""Storage faults: a read-only run folder (one line before anything is launched) and a full
disk (one line naming the folder and the space needed, nothing torn left, ``--resume``
completes the sweep). Both on a small tmpfs this test mounts; skipped where it may not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from analysis import results as R
from core.storage import Location
from search.cli import main
from tests.test_faults import attempts
from tests.test_resume import _wait_until_session_ended
from trainables.report_file import REPORT_FILE, parse_report

REPO = Path(__file__).resolve().parents[1]
MB = 1 << 20


def _mount(folder: Path, *options: str) -> bool:
    if os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs",
                           str(folder)], capture_output=True)  # fmt: skip
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    """A 20 MB tmpfs at ``tmp_path/disk`` (root only: tests run as root in CI)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if not _mount(folder, "size=20m"):
        pytest.skip("cannot mount a tmpfs here (needs root and mount permission)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def write_experiment(tmp_path: Path, storage: Path, **train) -> Path:
    log_dir = tmp_path / "log-full"
    log_dir.mkdir(exist_ok=True)
    raw = {
        "name": "full", "kind": "tests.fault_helpers:logged_trainable",
        "space": {"decoder": ["Unet", "FPN"]}, "repeats": 2,
        "scheduler": {"name": "fifo", "max_epochs": 4},
        "train": {"log_dir": str(log_dir), "sleep": 0.2, **train},
        "resources": {"cpu": 1}, "storage": str(storage),
    }  # fmt: skip
    path = tmp_path / "full.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("existing", [True, False])
def test_a_read_only_run_folder_is_one_line_before_anything_is_launched(
    tmpfs, tmp_path, capsys, existing
):
    import ray

    ray_was_running = ray.is_initialized()
    run = tmpfs / "runs" / "full"
    (run if existing else run.parent).mkdir(parents=True)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    path = write_experiment(tmp_path, tmpfs / "runs")
    assert main(["sweep", str(path)]) == 2
    assert ray.is_initialized() == ray_was_running  # nothing launched
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("microsweep")]
    assert len(err) == 1, err
    assert f"storage '{run}'" in err[0] and "Read-only file system" in err[0], err


def sweep(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "search", "sweep", str(path), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400, start_new_session=True,
    )  # fmt: skip


def newest_epoch(trial: Location) -> int:
    """The epoch of the trial folder's newest complete checkpoint; 0 if there is none."""
    complete = [c for c in trial.glob("checkpoint_*") if complete_checkpoint(c)]
    return max((parse_report((c / REPORT_FILE).read_bytes())[0]["epoch"] for c in complete),
               default=0)  # fmt: skip


def complete_checkpoint(folder: Location) -> bool:
    report = folder / REPORT_FILE
    parsed = parse_report(report.read_bytes()) if report.is_file() else None
    return bool(parsed) and all((folder / f).size() == n for f, n in parsed[1].items())


@pytest.mark.slow
def test_a_full_disk_stops_in_one_line_and_resume_completes(tmpfs, tmp_path):
    filler = tmpfs / "filler"
    filler.write_bytes(b"\0" * (11 * MB))  # 9 MB left: the first checkpoints (1 MB each) fit
    path = write_experiment(tmp_path, tmpfs / "runs", ballast_kb=1024)
    run = tmpfs / "runs" / "full"

    full = sweep(path)

    assert full.returncode == 2, (full.stdout + full.stderr)[-3000:]
    lines = [ln for ln in full.stderr.splitlines() if ln.startswith("microsweep: error:")]
    assert len(lines) == 1, full.stderr[-3000:]
    assert f"storage '{run}'" in lines[0] and "MB free" in lines[0] and "--resume" in lines[0]
    assert not list(run.rglob("*.tmp")) and not list(run.rglob(".*.tmp"))  # no torn writes
    for table in run.glob("*.parquet"):
        pq.read_table(table)  # whole
    checkpoints = [Location.parse(str(c)) for c in run.glob("*/checkpoint_*")]
    assert checkpoints and all(complete_checkpoint(c) for c in checkpoints)
    trials_file = run / R.TRIALS_FILE
    assert not trials_file.exists() or pq.read_table(trials_file).num_rows < 4

    filler.unlink()
    resumed = sweep(path, "--resume")

    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    trials = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    assert sorted((t["decoder"], t[R.SEED]) for t in trials) == sorted(
        (d, s) for d in ("Unet", "FPN") for s in (0, 1)
    )
    assert {(t[R.STATUS], t[R.EPOCHS]) for t in trials} == {(R.COMPLETED, 4)}
    epochs = [(e[R.TRIAL], e[R.EPOCH]) for e in pq.read_table(run / R.EPOCHS_FILE).to_pylist()]
    assert sorted(epochs) == sorted((t[R.TRIAL], n) for t in trials for n in range(1, 5))
    starts = [a[0]["restored"] for runs in attempts(tmp_path, "full").values() for a in runs[1:]]
    assert starts and max(starts) > 0  # continued from checkpoints, not from scratch


class S3Server:
    """A moto S3 server on a fixed localhost port that can be stopped and started again with
    its buckets (moto keeps them in this process), and the AWS_* variables to reach it."""

    def __init__(self, tmp: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.env = {
            **os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.port}",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(tmp / "aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "aws-credentials"),
        }  # fmt: skip
        self.env.pop("AWS_PROFILE", None)
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def s3(tmp_path, monkeypatch):
    pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")
    import logging

    import pyarrow.fs as pafs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = S3Server(tmp_path)
    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, server.env[key])
    server.start()
    pafs.S3FileSystem(endpoint_override=f"127.0.0.1:{server.port}", scheme="http",
                      allow_bucket_creation=True).create_dir("outage")  # fmt: skip
    yield server
    server.stop()


@pytest.mark.slow
def test_an_object_store_outage_stops_in_one_line_and_resume_completes(s3, tmp_path):
    """S3 down mid-sweep (issue 13): the first trial failed by it ends the sweep in one line
    (before Ray retries it); ``--resume`` completes it once S3 is back."""
    import time

    path = write_experiment(tmp_path, "s3://outage/runs")
    raw = yaml.safe_load(path.read_text())
    raw.update(scheduler={"name": "fifo", "max_epochs": 6})
    raw["space"]["decoder"] = ["Unet", "FPN"]
    raw.update(repeats=1)
    path.write_text(yaml.safe_dump(raw))
    run = Location.parse("s3://outage/runs/full")
    env = {**s3.env, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [sys.executable, "-m", "search", "sweep", str(path)], cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while driver.poll() is None and time.monotonic() < deadline:
        if any((t / "checkpoint_000001").is_dir() for t in run.glob("*_0000*")):
            break
        time.sleep(0.5)
    assert driver.poll() is None, "the sweep ended before the outage"
    s3.stop()
    down = time.monotonic()
    out, err = driver.communicate(timeout=300)
    stopped_after = time.monotonic() - down
    # down until nothing of the stopped sweep is left (its Ray workers included), so that no
    # late write of it lands after the outage; a fixed 30 s outage only added waiting
    _wait_until_session_ended(driver.pid)
    s3.start()

    assert driver.returncode == 2, (out + err)[-3000:]
    lines = [ln for ln in err.splitlines() if ln.startswith("microsweep: error:")]
    assert len(lines) == 1 and "s3://outage/runs/full' is unreachable" in lines[0], err[-3000:]
    assert "--resume" in lines[0]
    newest = {t.name.rsplit("_", 2)[-2] + "_" + t.name.rsplit("_", 1)[-1]: newest_epoch(t)
              for t in run.glob("*_0000*")}  # fmt: skip
    resumed_at = time.time()
    resumed = subprocess.run(
        [sys.executable, "-m", "search", "sweep", str(path), "--resume"], cwd=REPO, env=env,
        capture_output=True, text=True, timeout=400, start_new_session=True,
    )  # fmt: skip
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-3000:]
    trials = (run / R.TRIALS_FILE).read_table().to_pylist()
    assert {(t["decoder"], t[R.STATUS], t[R.EPOCHS]) for t in trials} == {
        ("Unet", R.COMPLETED, 6), ("FPN", R.COMPLETED, 6)
    }  # fmt: skip
    epochs = [(e[R.TRIAL], e[R.EPOCH]) for e in (run / R.EPOCHS_FILE).read_table().to_pylist()]
    assert sorted(epochs) == sorted((t[R.TRIAL], n) for t in trials for n in range(1, 7))
    # the interrupted trials continued from their newest complete checkpoint, although S3
    # being down kept Ray from storing the snapshot that names it (docs/faults.md)
    starts = {t: [a[0]["restored"] for a in runs if a[0]["t"] > resumed_at]
              for t, runs in attempts(tmp_path, "full").items()}  # fmt: skip
    assert any(starts.values()), "no trial was interrupted"
    assert {t: s[0] for t, s in starts.items() if s} == {
        t: newest[t] for t, s in starts.items() if s
    }, (starts, newest)
    print(f"stopped {stopped_after:.0f} s into the outage; resumed from epochs {starts}")
