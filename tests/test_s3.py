"""``storage: s3://...`` end to end against a real S3 protocol server (moto, on localhost).

Credentials and the endpoint come from the usual AWS environment variables, as on a cluster:
pyarrow (ours and Ray's) honours ``AWS_ENDPOINT_URL``. The sweeps run as ``microsweep``
subprocesses so that the Ray they start, and its trial workers, inherit that environment.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import yaml

from analysis import results as R
from core import storage
from core.storage import Location
from search.cli import main
from search.resume import newest_state_file

moto_server = pytest.importorskip("moto.server", reason="moto[server] is a dev dependency")

REPO = Path(__file__).resolve().parents[1]
BUCKET = "microsweep-test"


@pytest.fixture(scope="module")
def s3_env(tmp_path_factory):
    """A moto S3 server on a free localhost port, one bucket, and the AWS_* variables."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    isolated = tmp_path_factory.mktemp("aws")  # never read the user's ~/.aws
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(isolated / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(isolated / "credentials"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        mp.delenv("AWS_PROFILE", raising=False)
        admin = pafs.S3FileSystem(
            endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True
        )
        admin.create_dir(BUCKET)
        yield dict(os.environ)
    server.stop()


def write_experiment(tmp_path: Path, storage: str, **raw) -> Path:
    base = {
        "name": "tiny",
        "kind": "tests.sweep_helpers:toy_trainable",
        "space": {"decoder": ["Unet", "FPN"]},
        "scheduler": {"name": "fifo", "max_epochs": 2},
        "train": {"sleep": 0.0},
        "storage": storage,
    }
    base.update(raw)
    path = tmp_path / f"{base['name']}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


def sweep(path: Path, env: dict, *extra: str) -> str:
    """``microsweep sweep`` in a fresh process (its own Ray, which its workers share)."""
    done = subprocess.run(
        [sys.executable, "-m", "search", "sweep", str(path), *extra],
        cwd=REPO, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
        timeout=400, start_new_session=True,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def objects(uri: str) -> set[str]:
    """Every file under ``uri``, relative to it."""
    loc = Location.parse(uri)
    fs, root = loc.resolve()
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    return {i.path[len(root) + 1 :] for i in infos if i.type == pafs.FileType.File}


def test_results_files_round_trip_through_s3_without_temporary_objects(s3_env):
    run = Location.parse(f"s3://{BUCKET}/unit") / "run"
    storage.write_json(run / R.RUN_FILE, {"experiment": "run"})
    storage.write_bytes(run / R.TRUTH_DIR / "test" / "a.png", b"\x89PNG")
    for name in ("experiment_state-1.json", "experiment_state-2.json"):
        (run / name).write_bytes(b"{}")
    assert json.loads((run / R.RUN_FILE).read_bytes()) == {"experiment": "run"}
    assert [p.name for p in run.glob("experiment_state-*.json")][-1] == "experiment_state-2.json"
    assert run.is_dir() and (run / R.TRUTH_DIR / "test" / "a.png").is_file()
    assert objects(str(run)) == {
        R.RUN_FILE, "truth/test/a.png", "experiment_state-1.json", "experiment_state-2.json"
    }  # fmt: skip


def test_a_missing_bucket_fails_in_one_line_before_ray_starts(s3_env, tmp_path, capsys):
    import ray

    ray_was_running = ray.is_initialized()  # the session's shared Ray, when another test began it
    path = write_experiment(tmp_path, "s3://no-such-bucket-microsweep/runs")
    assert main(["sweep", str(path)]) == 2
    assert ray.is_initialized() == ray_was_running
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "'s3://no-such-bucket-microsweep/runs/tiny'" in err[0]
    assert "not found" in err[0] and "AWS_ACCESS_KEY_ID" in err[0]


def test_rejected_credentials_fail_in_one_line_before_ray_starts(s3_env, tmp_path, capsys):
    """moto checks signatures against its IAM users once INITIAL_NO_AUTH_ACTION_COUNT is
    reached: with 0, the test's keys belong to no user, as unknown keys on AWS."""
    import ray
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    ray_was_running = ray.is_initialized()
    path = write_experiment(tmp_path, f"s3://{BUCKET}/denied")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
        mp.setattr(ActionAuthenticatorMixin, "request_count", 0)
        assert main(["sweep", str(path)]) == 2
    assert ray.is_initialized() == ray_was_running
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"storage 's3://{BUCKET}/denied/tiny" in err[0] and "ACCESS_DENIED" in err[0], err
    assert "AWS_ACCESS_KEY_ID" in err[0]  # how to fix it
    assert objects(f"s3://{BUCKET}/denied") == set()  # nothing was written


@pytest.mark.slow
def test_sweep_report_and_resume_with_s3_storage(s3_env, tmp_path, capsys):
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "synth", seed=0, n_train=3, n_val=2, n_test=2,
                    size=64)  # fmt: skip
    path = write_experiment(
        tmp_path, f"s3://{BUCKET}/runs", name="real", kind="segmentation",
        data={"root": str(data), "classes": "superalloy"},
        space={"encoder": "resnet18", "decoder": "Unet", "init": ["none"], "lr": 1.0e-3},
        scheduler={"name": "fifo", "max_epochs": 1},
        train={"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "patience": 1,
               "eval_tile": 64, "eval_overlap": 0},
    )  # fmt: skip
    run = f"s3://{BUCKET}/runs/real"
    out = sweep(path, s3_env)
    assert f"results: {run}" in out and f"next: microsweep report {run}" in out

    files = objects(run)
    assert {R.RUN_FILE, R.TRIALS_FILE, R.EPOCHS_FILE, R.PER_IMAGE_FILE, "tuner.pkl"} <= files
    assert {"truth/test/test_000.png", "truth/test/test_001.png"} <= files
    assert any(f.startswith(f"{R.LOGS_DIR}/ray-") for f in files)  # Ray's log, uploaded at the end
    trials = (Location.parse(run) / R.TRIALS_FILE).read_table().to_pylist()
    assert [(t["decoder"], t[R.STATUS], t[R.EPOCHS]) for t in trials] == [("Unet", "completed", 1)]
    checkpoint = trials[0][R.CHECKPOINT]  # relative to the run folder, holding the predictions
    assert f"{checkpoint}/predictions/test/test_000.png" in files
    ckpt_files = {f for f in files if "/checkpoint_" in f}  # fault.keep: best, pruned on S3
    assert {f.removeprefix(checkpoint + "/").split("/")[0] for f in ckpt_files} == {
        "model.safetensors.zst", "config.json", "report.json", "predictions"
    }  # fmt: skip

    report = tmp_path / "report"
    assert main(["report", run, "--by", "init", "--out", str(report)]) == 0
    assert (report / "report.html").is_file()
    figures = os.listdir(report / "figures")  # accuracy maps: truth and predictions from S3
    assert any(f.startswith("accuracy_") for f in figures), figures

    sweep(path, s3_env, "--resume")  # a finished sweep: nothing is trained again
    assert (Location.parse(run) / R.TRIALS_FILE).read_table().to_pylist() == trials
    assert {f for f in objects(run) if "/checkpoint_" in f} == {
        f for f in files if "/checkpoint_" in f
    }

    state = newest_state_file(run)
    state.write_bytes(b'{"trial_data": ["{\\"stub')  # truncated, as a killed upload would not be
    capsys.readouterr()
    assert main(["sweep", str(path), "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(state) in err[0] and "truncated" in err[0], err


@pytest.mark.slow
def test_sigkilled_driver_resumes_on_s3(s3_env, tmp_path):
    """The local test's kill-and-resume, with Ray's state, checkpoints and our results on S3."""
    from tests.test_resume import KILL_SLEEP, kill_and_resume, write_experiment

    path = write_experiment(tmp_path, f"s3://{BUCKET}/killed", sleep=KILL_SLEEP)
    kill_and_resume(path, Location.parse(f"s3://{BUCKET}/killed/res"))


def test_resume_repairs_a_snapshot_naming_checkpoints_deleted_on_s3(s3_env):
    """search.repair with Ray's paths on S3 (``bucket/...``, no scheme) and ours (``s3://``):
    the trial continues from its newest checkpoint whose files all arrived whole."""
    from search.repair import BACKUP_SUFFIX
    from tests.test_repair import STATE, checkpoint, latest, make_trial, repair, snapshot

    root = f"s3://{BUCKET}/repair"
    run = Location.parse(root) / "run"
    trial = make_trial(root, "moved")
    for epoch in (1, 2):
        checkpoint(trial, epoch, 0.1 * epoch)
    original = snapshot(run, trial)
    for epoch in (3, 4, 5):  # Ray deletes checkpoints 1 and 2 from the bucket
        last = checkpoint(trial, epoch, 0.1 * epoch)
    (Location.parse(f"s3://{last}") / "state.json").write_bytes(b"{")  # cut short
    assert not (run / "moved" / "checkpoint_000001").exists()

    repairs = repair(run)

    assert [(r.trial, r.missing, r.restored, r.epoch) for r in repairs] == [
        ("moved", "checkpoint_000001", "checkpoint_000003", 4)
    ]
    assert latest(run)["moved"][:3:2] == ("moved/checkpoint_000003", 4)
    assert (run / (STATE + BACKUP_SUFFIX)).read_bytes() == original


def test_a_parquet_object_replaced_while_read_is_read_again(s3_env, tmp_path, monkeypatch):
    """pyarrow asks an object's size, then reads ranges: a replacement in between mixes two
    versions, which fails to parse (seen as 'Couldn't deserialize thrift' during a sweep)."""
    import pyarrow as pa

    from core import storage

    table = pa.table({"trial": ["a", "b"]})
    storage.write_parquet(Location.parse(f"s3://{BUCKET}/reread") / "t.parquet", table)
    storage.write_parquet(tmp_path / "t.parquet", table)
    calls = []
    real = storage.pq.read_table

    def flaky(*args, **kwargs):
        calls.append(args[0])
        if len(calls) < 3:
            raise pa.ArrowInvalid("Couldn't deserialize thrift: No more data to read.")
        return real(*args, **kwargs)

    monkeypatch.setattr(storage.pq, "read_table", flaky)
    assert (Location.parse(f"s3://{BUCKET}/reread") / "t.parquet").read_table() == table
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(pa.ArrowInvalid):  # a local file is replaced by rename: no mixed reads
        Location.parse(str(tmp_path / "t.parquet")).read_table()
    assert len(calls) == 1


def test_files_and_delete_on_s3(s3_env):
    run = Location.parse(f"s3://{BUCKET}/unit-delete") / "run"
    storage.write_bytes(run / "t" / "checkpoint_000001" / "state.pt", b"abc")
    storage.write_bytes(run / "t" / "checkpoint_000001" / "report.json", b"{}")
    storage.write_bytes(run / "t" / "checkpoint_000000" / "state.pt", b"abcd")
    assert run.files() == {
        "t/checkpoint_000001/state.pt": 3,
        "t/checkpoint_000001/report.json": 2,
        "t/checkpoint_000000/state.pt": 4,
    }
    (run / "t" / "checkpoint_000000").delete()
    (run / "t" / "checkpoint_000001" / "state.pt").delete()
    assert objects(str(run)) == {"t/checkpoint_000001/report.json"}
