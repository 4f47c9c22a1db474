"""The protocol without Ray: schedule, divergence, crops, tiled inference, checkpoints, resume."""

import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import UserError
from trainables import checkpoint as ckpt
from trainables.augment import create_augmentation, normalize
from trainables.config import SegmentationConfig
from trainables.data.dataset import SegmentationData, Split
from trainables.loop import (
    CropDataset,
    Diverged,
    EvalSettings,
    PaperSchedule,
    check_finite,
    evaluate,
    make_loader,
    train_one_epoch,
)
from trainables.losses import SegmentationLoss
from trainables.report_file import REPORT_FILE, parse_report
from trainables.reporting import run_epochs
from trainables.runtime import Runtime
from trainables.segmentation import SegmentationTrial, run_trial
from trainables.tiling import predict_logits, tile_starts

CPU = Runtime(torch.device("cpu"))


def toy_split(n: int, prefix: str, seed: int, size: int = 64) -> Split:
    """Bright squares of class 1 / 2 on a dark background: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for _ in range(n):
        mask = np.zeros((size, size), np.uint8)
        for cls in (1, 2):
            y, x = rng.integers(0, size - 16, 2)
            mask[y : y + 16, x : x + 16] = cls
        image = (mask[..., None] * 90 + rng.integers(0, 40, (size, size, 1))).astype(np.uint8)
        images.append(np.repeat(image, 3, axis=2))
        masks.append(mask)
    return Split(images, masks, [f"{prefix}{i}" for i in range(n)])


def toy_data() -> SegmentationData:
    splits = {
        "train": toy_split(4, "t", 0),
        "val": toy_split(2, "v", 1),
        "test": toy_split(2, "s", 2),
    }
    return SegmentationData(("matrix", "a", "b"), "toy", splits)


def test_schedule_drops_lr_after_patience_then_stops_after_patience_more():
    s = PaperSchedule(lr=1e-3, lr_final=1e-5, patience=2)
    seen = []
    for epoch, iou in enumerate([0.5, 0.6, 0.6, 0.55, 0.7, 0.7, 0.69], start=1):
        seen.append((s.step(epoch, iou), s.current_lr, s.done))
    assert [improved for improved, _, _ in seen] == [True, True, False, False, True, False, False]
    assert [lr for _, lr, _ in seen] == [1e-3, 1e-3, 1e-3, 1e-5, 1e-5, 1e-5, 1e-5]
    assert [done for _, _, done in seen][-2:] == [False, True]
    assert (s.best_epoch, s.best_iou) == (5, 0.7)


def test_schedule_state_round_trips():
    s = PaperSchedule(lr=1e-3, lr_final=1e-5, patience=2)
    s.step(1, 0.4)
    s.step(2, 0.3)
    t = PaperSchedule(lr=1e-3, lr_final=1e-5, patience=2)
    t.load_state_dict(s.state_dict())
    assert t == s


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_values_diverge(value):
    with pytest.raises(Diverged, match="val_iou"):
        check_finite("val_iou", value)
    with pytest.raises(Diverged):
        PaperSchedule(lr=1e-3, lr_final=1e-5, patience=2).step(1, value)


def test_a_nan_weight_stops_training_with_diverged():
    split = toy_split(2, "t", 0)
    model = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        model.weight[0, 0, 0, 0] = math.nan
    dataset = CropDataset(
        split.images, split.masks, create_augmentation("none", crop=32), length=2, seed=0
    )
    opt = torch.optim.Adam(model.parameters())
    with pytest.raises(Diverged, match="train_loss is nan"):
        train_one_epoch(model, make_loader(dataset, batch_size=2), SegmentationLoss(), opt, CPU)


def test_crops_are_deterministic_per_seed_and_read_only_images_work():
    split = toy_split(3, "t", 0)
    for image in split.images:
        image.flags.writeable = False
    aug = create_augmentation("superalloy", crop=32, random_resize=0.2)
    a = CropDataset(split.images, split.masks, aug, length=4, seed=7)
    b = CropDataset(split.images, split.masks, aug, length=4, seed=7)
    c = CropDataset(split.images, split.masks, aug, length=4, seed=8)
    assert all(torch.equal(a[i][0], b[i][0]) for i in range(4))
    assert not all(torch.equal(a[i][0], c[i][0]) for i in range(4))
    image, mask = a[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.uint8
    assert mask.shape == (32, 32) and mask.dtype == torch.long


def test_the_epoch_reports_how_long_it_waited_for_its_loader():
    class Slow(torch.utils.data.Dataset):
        def __init__(self, delay: float) -> None:
            self.delay = delay

        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int):
            time.sleep(self.delay)
            return torch.zeros(3, 8, 8, dtype=torch.uint8), torch.zeros(8, 8, dtype=torch.long)

    model = nn.Conv2d(3, 2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    waits = {}
    for delay in (0.0, 0.1):
        timing: dict[str, float] = {}
        loader = torch.utils.data.DataLoader(Slow(delay), batch_size=2)
        train_one_epoch(model, loader, SegmentationLoss(), opt, CPU, timing=timing)
        waits[delay] = timing["data_wait_s"]
    assert waits[0.1] >= 0.4 and waits[0.0] < 0.1  # 4 items of 0.1 s, fetched in the loop


def test_flips_of_a_sample_are_drawn_independently():
    """Every transform used to get its own generator with the sample's seed, so a horizontal
    flip came exactly with a vertical one: 2 of the 4 orientations (albumentations'
    set_random_seed). The transforms now draw from one generator in turn."""
    import albumentations as A

    image = np.arange(16, dtype=np.uint8).reshape(4, 4, 1).repeat(3, axis=2)
    mask = np.zeros((4, 4), dtype=np.uint8)
    aug = A.Compose([A.HorizontalFlip(), A.VerticalFlip()])
    data = CropDataset([image], [mask], aug, length=64, seed=0)
    corners = [int(data[i][0][0, 0, 0]) for i in range(64)]  # 0, 3, 12, 15: the 4 flips
    assert sorted(set(corners)) == [0, 3, 12, 15]
    assert corners == [int(data[i][0][0, 0, 0]) for i in range(64)]  # still per index


@pytest.mark.parametrize(("height", "width"), [(100, 130), (64, 64), (40, 200)])
def test_tiled_inference_matches_whole_image_for_a_pointwise_model(height, width):
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, 1).eval()
    image = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    tiled = predict_logits(model, image, num_classes=4, runtime=CPU, tile=64, overlap=16, batch=3)
    with torch.no_grad():
        whole = model(normalize(torch.from_numpy(image).permute(2, 0, 1)[None]))[0]
    assert tiled.shape == (4, height, width)
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-5)


def test_tiles_cover_the_image_and_end_flush():
    assert tile_starts(130, 64, 16) == [0, 48, 66]
    assert tile_starts(64, 64, 16) == [0]


def test_evaluation_of_a_perfect_model_gives_iou_one():
    split = toy_split(2, "v", 1)

    class Oracle(nn.Module):  # looks up the truth from the image brightness
        def forward(self, x):
            level = ((x[:, :1] * 0.229 + 0.485) * 255 / 90).floor().clamp(0, 2).long()[:, 0]
            return nn.functional.one_hot(level, 3).permute(0, 3, 1, 2).float() * 30

    result = evaluate(
        Oracle(), split.images, split.masks, split.names,
        loss_fn=SegmentationLoss(), runtime=CPU, settings=EvalSettings(num_classes=3, tile=64),
        keep_predictions=True,
    )  # fmt: skip
    assert result.iou == pytest.approx(1.0)
    assert set(result.per_image_iou) == {"v0", "v1"}
    np.testing.assert_array_equal(result.predictions["v0"], split.masks[0])


def test_checkpoint_round_trip_restores_rng_and_refuses_code(tmp_path):
    state = ckpt.TrialState(
        epoch=3, model={"w": torch.ones(2)}, optimizer={"state": {}, "param_groups": []},
        schedule={"phase": 1}, rng=ckpt.rng_state(),
    )  # fmt: skip
    expected = (torch.rand(3), np.random.rand(3))
    ckpt.save(tmp_path, state)
    loaded = ckpt.load(tmp_path)
    ckpt.set_rng_state(loaded.rng)
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert loaded.epoch == 3 and torch.equal(loaded.best_weights()["w"], torch.ones(2))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": 1, "epoch": Evil()}, tmp_path / ckpt.STATE_FILE)
    with pytest.raises(Exception, match="unreadable checkpoint"):
        ckpt.load(tmp_path)


def test_an_ended_trials_weights_are_a_zstd_safetensors_file_read_back_exactly(tmp_path):
    from safetensors.torch import load, save_file

    from trainables.models import create_model

    weights = create_model(decoder="Unet", encoder="resnet18", num_classes=3).state_dict()
    ckpt.save_model(tmp_path, weights, {"decoder": "Unet"})
    packed = (tmp_path / ckpt.MODEL_FILE).read_bytes()
    save_file(weights, str(tmp_path / ckpt.PLAIN_MODEL_FILE))  # the file of older run folders
    plain = (tmp_path / ckpt.PLAIN_MODEL_FILE).read_bytes()
    assert len(packed) < 0.95 * len(plain)  # lossless, and smaller
    unpacked = subprocess.run(["zstd", "-dc"], input=packed, capture_output=True, check=True)
    assert load(unpacked.stdout).keys() == weights.keys()  # a standard zstd frame
    for data in (packed, plain):
        back = ckpt.read_model(data, source="m")
        assert all(torch.equal(back[k], v) for k, v in weights.items())
    with pytest.raises(UserError, match=r"^m: unreadable model weights"):
        ckpt.read_model(packed[: len(packed) // 2], source="m")


def test_scratch_is_the_env_folder_then_dev_shm_with_room_then_the_temp_folder(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(ckpt, "SHM", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    monkeypatch.setenv(ckpt.SCRATCH_ENV, str(tmp_path / "mine"))
    assert ckpt.scratch_dir() == tmp_path / "mine"
    monkeypatch.delenv(ckpt.SCRATCH_ENV)
    monkeypatch.setattr(ckpt, "SHM_MIN_FREE", 0)
    assert ckpt.scratch_dir() == tmp_path / "shm"
    monkeypatch.setattr(ckpt, "SHM_MIN_FREE", 1 << 60)  # too little room
    assert ckpt.scratch_dir() is None


def test_a_full_dev_shm_falls_back_to_the_temp_folder(tmp_path, monkeypatch):
    shm = tmp_path / "shm"
    shm.mkdir()
    monkeypatch.delenv(ckpt.SCRATCH_ENV, raising=False)
    monkeypatch.setattr(ckpt, "SHM", shm)
    monkeypatch.setattr(ckpt, "SHM_MIN_FREE", 0)
    real_save = ckpt.save

    def save(folder, state):
        if shm in folder.parents:
            raise OSError(28, "No space left on device")
        return real_save(folder, state)

    monkeypatch.setattr(ckpt, "save", save)
    state = ckpt.TrialState(epoch=2, model={}, optimizer={}, schedule={})
    folder = ckpt.save_to_scratch(state, prefix="microsweep-test-")
    try:
        assert shm not in folder.parents and ckpt.load(folder).epoch == 2
        assert list(shm.iterdir()) == []  # the failed attempt left nothing in memory
    finally:
        shutil.rmtree(folder)


def test_scratch_folders_of_ended_processes_are_removed(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    dead, alive = int(ended.stdout), os.getpid()
    for name in (f"microsweep-segmentation-{dead}-x1", f"microsweep-pretraining-{alive}-x2",
                 "microsweep-segmentation-x3", "other-1-x4"):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / ckpt.STATE_FILE).write_bytes(b"0" * 10)
    assert ckpt.remove_orphans(tmp_path) == [tmp_path / f"microsweep-segmentation-{dead}-x1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["microsweep-segmentation-x3", f"microsweep-pretraining-{alive}-x2", "other-1-x4"]
    )


def _config(**extra):
    base = {"crop": 64, "batch_size": 2, "samples_per_epoch": 4, "max_epochs": 3,
            "patience": 5, "precision": "fp32", "eval_tile": 64, "eval_overlap": 16}  # fmt: skip
    return SegmentationConfig.from_dict({**base, **extra})


@pytest.mark.slow
def test_resumed_trial_ends_with_the_same_weights_and_epochs(tmp_path):
    torch.set_num_threads(1)
    data = toy_data()
    straight, epochs = SegmentationTrial(_config(max_epochs=2), data, CPU), []
    run_trial(straight, lambda m, f: epochs.append(m["epoch"]))
    first = SegmentationTrial(_config(max_epochs=1), data, CPU)
    run_trial(first, lambda m, f: ckpt.save(tmp_path, first.state()))
    resumed, more = SegmentationTrial(_config(max_epochs=2), data, CPU), []
    resumed.restore(ckpt.load(tmp_path))
    run_trial(resumed, lambda m, f: more.append(m["epoch"]))
    assert epochs == [1, 2] and more == [2]
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value, rtol=0, atol=0)


def test_a_trial_restored_from_its_last_checkpoint_reports_its_end_again(tmp_path):
    """The driver died after the last checkpoint and before it recorded the end: Ray restores
    the trial from that checkpoint, and its final report (test figures too) comes again."""
    torch.set_num_threads(1)
    data, reports = toy_data(), []

    def keep(metrics, folder):
        reports.append(metrics)
        shutil.copytree(folder, tmp_path / "last", dirs_exist_ok=True)

    run_trial(SegmentationTrial(_config(max_epochs=1), data, CPU), keep)
    again = SegmentationTrial(_config(max_epochs=1), data, CPU)
    again.restore(ckpt.load(tmp_path / "last"))
    repeated = []
    run_trial(again, lambda m, f: repeated.append((m, (f / "predictions").is_dir())))
    assert len(reports) == 1 and len(repeated) == 1 and repeated[0][1]
    untimed = [
        {k: v for k, v in r.items() if not k.startswith("time_") and k != "history"}
        for r in (reports[0], repeated[0][0])
    ]
    assert untimed[0]["done"] and untimed[1] == untimed[0]
    assert [h["epoch"] for h in json.loads(repeated[0][0]["history"])] == [1]  # before, once


@pytest.mark.slow
def test_final_report_uses_the_best_model_and_writes_predictions(tmp_path):
    torch.set_num_threads(1)
    reports = []
    trial = SegmentationTrial(_config(max_epochs=2), toy_data(), CPU)
    run_trial(
        trial,
        lambda m, f: reports.append(
            (m, sorted(p.relative_to(f).as_posix() for p in f.rglob("*.png")))
        ),
    )
    last, pngs = reports[-1]
    assert last["done"] is True and last["test_iou"] == last["test_iou:test"]
    assert last["best_val_iou"] == max(r["val_iou"] for r, _ in reports)
    assert set(last["per_image_iou"]["test"]) == {"s0", "s1"}
    assert pngs == ["predictions/test/s0.png", "predictions/test/s1.png"]
    assert "done" not in reports[0][0]


def test_runtime_defaults_cpu_to_fp32_and_bf16_brings_channels_last():
    from trainables.runtime import resolve_runtime

    auto = resolve_runtime("auto", "auto", use_cuda=False)
    assert (auto.device.type, auto.amp_dtype, auto.channels_last) == ("cpu", None, False)
    bf16 = resolve_runtime("bf16", "auto", use_cuda=False)
    assert (bf16.amp_dtype, bf16.channels_last) == (torch.bfloat16, True)
    assert not resolve_runtime("bf16", "false", use_cuda=False).channels_last


class _Counter:
    """An EpochTrial whose state is its epoch: enough to see which epochs carry checkpoints."""

    def __init__(self, epochs: int):
        self.epoch, self.epochs, self.last_result = 0, epochs, None
        self.history: list[dict] = []

    @property
    def finished(self) -> bool:
        return self.epoch >= self.epochs

    def step(self):
        self.epoch += 1
        return {"epoch": self.epoch}

    def state(self):
        return ckpt.TrialState(epoch=self.epoch, model={}, optimizer={}, schedule={})


@pytest.mark.parametrize(("every", "saved"), [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (9, [5])])
def test_checkpoints_every_n_epochs_and_always_at_the_end(every, saved):
    seen = []

    def report(metrics, folder):
        state = ckpt.load(folder).epoch if folder else None
        seen.append((metrics["epoch"], state, "done" in metrics))

    run_epochs(_Counter(5), report, final=lambda f: {"done": True}, name="t", every=every)
    assert [e for e, _, _ in seen] == [1, 2, 3, 4, 5]  # every epoch reported
    assert [s for _, s, _ in seen if s is not None] == saved  # the checkpoint is that epoch's
    assert [done for _, _, done in seen] == [False] * 4 + [True]


def test_checkpoints_keep_their_report_and_history_which_a_restore_reports_once():
    reports, states = [], []

    def report(metrics, folder):
        reports.append(metrics)
        if folder:
            states.append(ckpt.load(folder))
            state_file = folder / ckpt.STATE_FILE  # what a restore needs; predictions come after
            files = {ckpt.STATE_FILE: state_file.stat().st_size}
            parsed = parse_report((folder / REPORT_FILE).read_bytes())
            assert parsed == (states[-1].extra["result"], files)

    def final(folder):
        return {"done": True}

    run_epochs(_Counter(3), report, final=final, name="t")
    assert [s.extra["result"] for s in states] == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    assert states[-1].extra["history"] == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    assert not any("history" in r for r in reports)  # a fresh trial has none to send

    reports.clear()
    resumed = _Counter(3)  # restored from epoch 1's checkpoint
    resumed.epoch, resumed.history = 1, list(states[0].extra["history"])
    run_epochs(resumed, report, final=final, name="t")
    assert [r.get("history") for r in reports] == ['[{"epoch": 1}]', None]  # once, the first
    assert states[-1].extra["history"] == [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]

    class _Diverges(_Counter):
        def step(self):
            raise Diverged("non-finite loss: nan")

    reports.clear()
    diverged = _Diverges(3)  # restored from epoch 2, diverges at once: the history still goes
    diverged.epoch, diverged.history = 2, list(states[1].extra["history"])
    run_epochs(diverged, report, final=final, name="t")
    assert [(r["diverged"], json.loads(r["history"])) for r in reports] == [
        (True, [{"epoch": 1}, {"epoch": 2}])
    ]

    reports.clear()
    ended = _Counter(3)  # restored from the last checkpoint: the end is reported again
    ended.epoch, ended.last_result, ended.history = 3, {"epoch": 3}, states[-1].extra["history"]
    run_epochs(ended, report, final=final, name="t")
    assert [(r["epoch"], r["done"], len(json.loads(r["history"]))) for r in reports] == [
        (3, True, 3)
    ]


def test_checkpoint_every_must_be_positive():
    with pytest.raises(UserError, match="checkpoint_every"):
        _config(checkpoint_every=0)
