"""`microsweep status` against a run folder on S3 (moto): the same answer as on a disk."""

from __future__ import annotations

from analysis import results as R
from core import storage
from search.cli import main
from tests.test_s3 import BUCKET, s3_env  # noqa: F401  (the moto server fixture)
from tests.test_status import fake_run


def test_status_reads_a_run_folder_on_s3_like_a_local_one(s3_env, tmp_path, capsys):  # noqa: F811
    run = fake_run(tmp_path / "run", planned_trials=30, planned_trial_epochs=400)
    uri = f"s3://{BUCKET}/runs/status-demo"
    for name in (R.RUN_FILE, R.TRIALS_FILE, R.EPOCHS_FILE):
        storage.write_bytes(f"{uri}/{name}", (run / name).read_bytes())
    assert main(["status", str(run)]) == 0
    local = capsys.readouterr().out
    assert main(["status", uri]) == 0
    remote = capsys.readouterr().out
    body = lambda text: [ln for ln in text.splitlines()[1:] if "since start" not in ln]  # noqa: E731
    assert body(remote) == body(local) and "/30 ended" in remote
    assert remote.splitlines()[0] == f"run: {uri}"
