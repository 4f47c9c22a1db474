"""``fault.keep``: what an ended trial's folder keeps (search.pruning), unit and real sweeps."""

import os
from pathlib import Path

import pytest
import torch
import yaml

from analysis import results as R
from core.storage import Location
from search.experiment import load_experiment
from search.pruning import prune_trial
from trainables import checkpoint as ckpt
from trainables.report_file import write_report

REPO = Path(__file__).resolve().parents[1]
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def tiny_state(epoch: int, *, best_differs: bool) -> ckpt.TrialState:
    torch.manual_seed(epoch)
    model = torch.nn.Conv2d(3, 2, 3)
    best = {k: v + 1.0 for k, v in model.state_dict().items()} if best_differs else None
    opt = torch.optim.Adam(model.parameters())
    extra = {"config": {"decoder": "Unet"}}
    return ckpt.TrialState(epoch=epoch, model=model.state_dict(), optimizer=opt.state_dict(),
                           schedule={}, best_model=best, extra=extra)  # fmt: skip


def write_trial(run: Path, *, final_files: bool) -> str:
    """Three checkpoints of trial ``t``; the last with final files when ``final_files``."""
    for i in range(3):
        folder = run / "t" / f"checkpoint_{i:06d}"
        folder.mkdir(parents=True)
        state = tiny_state(i, best_differs=i == 2)
        ckpt.save(folder, state)
        write_report(folder, {"epoch": i + 1})
        if final_files and i == 2:
            ckpt.save_model(folder, state.best_weights(), {"decoder": "Unet"})
            (folder / R.PREDICTIONS_DIR / "test").mkdir(parents=True)
            (folder / R.PREDICTIONS_DIR / "test" / "a.png").write_bytes(b"png")
    (run / "t" / "result.json").write_text("{}")  # Ray's own files stay
    return "t/checkpoint_000002"


def listing(run: Path) -> set[str]:
    return set(Location.parse(run).files())


def test_keep_best_leaves_the_final_checkpoint_with_weights_config_predictions_and_report(
    tmp_path,
):
    final = write_trial(tmp_path, final_files=True)
    removed = prune_trial(Location.parse(tmp_path), final, keep="best")
    assert listing(tmp_path) == {
        "t/result.json",
        f"{final}/{ckpt.MODEL_FILE}",
        f"{final}/config.json",
        f"{final}/report.json",
        f"{final}/predictions/test/a.png",
    }
    assert removed > 0 and prune_trial(Location.parse(tmp_path), final, keep="best") == 0


def test_keep_best_keeps_the_uncompressed_weights_of_an_older_run_folder(tmp_path):
    final = write_trial(tmp_path, final_files=True)
    packed = tmp_path / final / ckpt.MODEL_FILE
    plain = packed.with_name(ckpt.PLAIN_MODEL_FILE)
    plain.write_bytes(packed.read_bytes())  # a name, as older microsweep wrote it
    packed.unlink()
    prune_trial(Location.parse(tmp_path), final, keep="best")
    assert f"{final}/{ckpt.PLAIN_MODEL_FILE}" in listing(tmp_path)


def test_a_stopped_trial_keeps_its_report_with_best_and_its_state_with_last(tmp_path):
    final = write_trial(tmp_path / "best", final_files=False)  # ASHA stopped it: no final files
    prune_trial(Location.parse(tmp_path / "best"), final, keep="best")
    assert listing(tmp_path / "best") == {"t/result.json", f"{final}/report.json"}
    write_trial(tmp_path / "last", final_files=False)
    prune_trial(Location.parse(tmp_path / "last"), final, keep="last")
    assert listing(tmp_path / "last") == {"t/result.json", f"{final}/report.json",
                                          f"{final}/state.pt"}  # fmt: skip


def test_keep_last_keeps_the_final_checkpoint_whole_and_keep_all_everything(tmp_path):
    final = write_trial(tmp_path / "last", final_files=True)
    before = {f for f in listing(tmp_path / "last") if f.startswith(final) or "/" not in f[2:]}
    prune_trial(Location.parse(tmp_path / "last"), final, keep="last")
    assert listing(tmp_path / "last") == before
    write_trial(tmp_path / "all", final_files=True)
    everything = listing(tmp_path / "all")
    assert prune_trial(Location.parse(tmp_path / "all"), final, keep="all") == 0
    assert listing(tmp_path / "all") == everything


def test_keep_must_be_one_of_the_modes(tmp_path):
    from core.errors import UserError

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump({"name": "e", "kind": "a:b", "space": {"x": [1]},
                                    "fault": {"keep": "bset"}}))  # fmt: skip
    with pytest.raises(UserError, match=r"fault.keep must be one of best, last, all.*'best'"):
        load_experiment(path)


def toy_experiment(tmp_path: Path, keep: str):
    raw = {
        "name": f"keep-{keep}",
        "kind": "tests.sweep_helpers:toy_trainable",
        "space": {"decoder": ["Unet", "FPN", "PSPNet"]},
        "scheduler": {"name": "asha", "max_epochs": 3, "grace_epochs": 1, "reduction_factor": 2},
        "resources": {"cpu": 2},  # one at a time (2 CPUs): ASHA decides the same in both runs
        "train": {"sleep": 0.0, "raise_decoder": "PSPNet", "raise_at": 1},
        "fault": {"keep": keep, "max_failures": 0},
        "storage": str(tmp_path / "runs"),
    }
    path = tmp_path / f"{keep}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_experiment(path)


VOLATILE = (R.EXPERIMENT, R.CPU, R.WALL_S, R.NODE, R.TRIAL, R.CHECKPOINT, R.ERROR)


@pytest.mark.slow
def test_toy_sweep_keep_best_prunes_ended_trials_with_the_same_results_as_keep_all(
    ray_local, tmp_path
):
    from search.launch import run_sweep

    results = {keep: run_sweep(toy_experiment(tmp_path, keep)) for keep in ("all", "best")}
    rows = {
        keep: sorted(
            ({k: v for k, v in r.items() if k not in VOLATILE} for r in res.trials),
            key=lambda r: r["decoder"],
        )
        for keep, res in results.items()
    }
    assert rows["best"] == rows["all"]
    statuses = {r["decoder"]: r[R.STATUS] for r in rows["best"]}
    assert statuses == {"Unet": R.COMPLETED, "FPN": R.STOPPED, "PSPNet": R.ERRORED}
    best, every = (Path(str(results[k].run_dir)) for k in ("best", "all"))
    ended = [r for r in results["best"].trials if r[R.STATUS] != R.ERRORED]  # error: at epoch 1
    for row in ended:  # one checkpoint folder left, with its report only
        folders = sorted((best / row[R.TRIAL]).glob("checkpoint_*"))
        assert [f"{row[R.TRIAL]}/{f.name}" for f in folders] == [row[R.CHECKPOINT]]
        assert [p.name for p in folders[0].iterdir()] == ["report.json"]
    ended = [r for r in results["all"].trials if r[R.STATUS] != R.ERRORED]
    assert max(len(list((every / r[R.TRIAL]).glob("checkpoint_*"))) for r in ended) == 2
    assert all((every / r[R.CHECKPOINT] / "state.json").is_file() for r in ended)


@pytest.mark.slow
def test_real_segmentation_sweep_keeps_weights_and_predictions_for_the_report(ray_local, tmp_path):
    from analysis import build_report
    from search.launch import run_sweep
    from trainables.data.synth import generate

    data = generate("superalloy", tmp_path / "synth", seed=0, n_train=3, n_val=2, n_test=2,
                    size=64)  # fmt: skip
    raw = {
        "name": "real", "kind": "segmentation",
        "data": {"root": str(data), "classes": "superalloy"},
        "space": {"encoder": "resnet18", "decoder": "Unet", "init": ["none"], "lr": 1.0e-3},
        "scheduler": {"name": "fifo", "max_epochs": 2},
        "train": {"crop": 64, "batch_size": 4, "samples_per_epoch": 8, "patience": 2,
                  "eval_tile": 64, "eval_overlap": 0},
        "storage": str(tmp_path / "runs"),
    }  # fmt: skip
    path = tmp_path / "real.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = run_sweep(load_experiment(path))
    (row,) = result.trials
    assert row[R.STATUS] == R.COMPLETED
    run = Path(str(result.run_dir))
    files = {f for f in Location.parse(run / row[R.TRIAL]).files() if "checkpoint_" in f}
    final = row[R.CHECKPOINT].split("/", 1)[1]
    assert files == {f"{final}/{n}" for n in (ckpt.MODEL_FILE, "config.json", "report.json",
                                              "predictions/test/test_000.png",
                                              "predictions/test/test_001.png")}  # fmt: skip
    from tests.test_best_store import final_model
    from trainables.models import create_model

    model = create_model(decoder="Unet", encoder="resnet18", num_classes=3, init="none")
    model.load_state_dict(final_model(run, row[R.CHECKPOINT]))  # its config's architecture
    out = build_report([str(run)], by=["init"], out=tmp_path / "report")
    assert any(f.startswith("accuracy_") for f in os.listdir(out / "figures"))
