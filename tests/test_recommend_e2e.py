"""The main use end to end, as the README's quickstart runs it: init -> recommend -> predict,
with real Ray, real smp models and real files (tiny sizes)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from analysis import results as R
from search.cli import main
from tests.data_factory import flat_dataset

pytestmark = pytest.mark.slow
TINY = [
    "space.encoder=[resnet18]", "space.decoder=[Unet, FPN]", "space.init=none",
    "space.bce_weight=0.7", "space.lr=1e-3", "repeats=1",
    "scheduler.max_epochs=2", "scheduler.grace_epochs=1",
    "train.samples_per_epoch=4", "train.batch_size=2", "train.precision=fp32",
    "resources.cpu=1", "resources.gpu=0",
]  # fmt: skip


def test_init_recommend_predict_on_a_flat_dataset(ray_local, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    flat_dataset(tmp_path / "NewAlloy", n=10)
    assert main(["init", "NewAlloy", "--classes", "ebc", "--out", "exp.yaml"]) == 0
    sets = [a for item in TINY for a in ("--set", item)]
    assert main(["recommend", "exp.yaml", "--top", "2", "--seeds", "2", *sets]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "NewAlloy"
    assert "recommended:" in out and f"microsweep predict {run}/model" in out

    trials = pq.read_table(run / R.TRIALS_FILE).to_pylist()
    search = [t for t in trials if t[R.STAGE] == R.SEARCH]
    confirm = [t for t in trials if t[R.STAGE] == R.CONFIRM]
    assert len(search) == 2 and len(confirm) == 4  # 2 configurations x 2 new seeds
    assert {t[R.SEED] for t in confirm} == {1, 2}  # new seeds, not the search's 0
    assert all(t[R.STATUS] == R.COMPLETED and t[R.EPOCHS] == 2 for t in confirm)

    rec = json.loads((run / R.RECOMMENDATION_FILE).read_text())
    assert abs(sum(c["p_best"] for c in rec["candidates"]) - 1) < 1e-9
    assert rec["winner"]["best_trial"] in {t[R.TRIAL] for t in confirm}
    model = run / "model"
    assert (model / "model.json").is_file() and (model / "model.safetensors").is_file()

    assert main(["predict", str(model), "NewAlloy/images", "--out", "pred"]) == 0
    masks = sorted((tmp_path / "pred" / "masks").glob("*.png"))
    assert len(masks) == 10 and (tmp_path / "pred" / "phases.parquet").is_file()
