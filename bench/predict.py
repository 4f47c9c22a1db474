"""``microsweep predict``'s inference vs the tiling of NASA's reference code, side by side.

The same model (Unet-resnet18, briefly trained here on EBC1's training images, or given with
``--model DIR`` as an exported package) segments the same 1024² micrographs (EBC1's test
images from ``../shared/data/nasa-benchmark`` when present, synthetic EBC images otherwise):

- **ours**: :meth:`trainables.package.SegmentationModel.predict` (whole image in one pass up
  to the package's tile size, linear-taper blending above it) as ``microsweep predict`` runs
  it (``load_model``'s default: BatchNorm folded into the convolutions, channels_last), in
  fp32 and in the runtime's best CPU setting (bf16 autocast, when the CPU has native bf16);
  also in fp32 with ``optimise=False`` (smp's modules as trained, NCHW), to show what the
  inference transforms add;
- **reference**: a re-implementation of ``segmentation_models_inference`` in NASA's
  pretrained-microscopy-models (512² tiles, stride 256, reflect padding of half a stride,
  constant padding to a multiple of 512, only each tile's centre kept, the outputs grown
  with ``np.append`` in float64, batches of 8), fp32, on smp's model as trained (NCHW,
  BatchNorm kept), as NASA's code runs it. It returns per-class booleans; the class map
  compared here is the argmax of the same probabilities.

Prints seconds per image, the speed ratios (targets: >= 5x fp32, >= 12x best CPU setting),
megapixels/s and the pixel agreement of the class maps (target >= 99.5 %).

Run: ``.venv/bin/python bench/predict.py [--images 2] [--epochs 3] [--model DIR]``
(a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trainables.config import SegmentationConfig  # noqa: E402
from trainables.data.dataset import load_dataset  # noqa: E402
from trainables.data.fingerprint import class_map_record  # noqa: E402
from trainables.data.spec import DataSpec  # noqa: E402
from trainables.package import load_model, write_package  # noqa: E402
from trainables.runtime import cpu_has_bf16, resolve_runtime  # noqa: E402
from trainables.segmentation import SegmentationTrial  # noqa: E402

SHARED = Path(os.environ.get("MICROSWEEP_SHARED_DATA", REPO.parent / "shared" / "data"))
PATCH, BATCH = 512, 8


def reference_inference(model: torch.nn.Module, image: np.ndarray, num_classes: int) -> np.ndarray:
    """NASA's tiling (see the module docstring); returns HxW class indices."""
    from trainables.augment import IMAGENET_MEAN, IMAGENET_STD

    io = (image.astype(np.float64) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD  # smp preprocessing
    h, w = io.shape[:2]
    stride = PATCH // 2
    half = stride // 2
    io = np.pad(io, [(half, half), (half, half), (0, 0)], mode="reflect")
    pad0 = int(np.ceil(io.shape[0] / PATCH) * PATCH - io.shape[0])
    pad1 = int(np.ceil(io.shape[1] / PATCH) * PATCH - io.shape[1])
    io = np.pad(io, [(0, pad0), (0, pad1), (0, 0)], mode="constant")
    windows = np.lib.stride_tricks.sliding_window_view(io, (PATCH, PATCH, 3))[::stride, ::stride]
    grid = windows.shape[:2]
    tiles = windows.reshape(-1, PATCH, PATCH, 3)
    output = np.zeros((0, num_classes, PATCH, PATCH))
    for i in range(0, len(tiles), BATCH):
        x = torch.from_numpy(tiles[i : i + BATCH].transpose(0, 3, 1, 2).astype("float32"))
        with torch.inference_mode():
            probs = torch.softmax(model(x), dim=1)  # smp's activation="softmax2d"
        output = np.append(output, probs.numpy(), axis=0)
    output = output.transpose(0, 2, 3, 1).reshape(*grid, PATCH, PATCH, num_classes)
    output = output[:, :, half:-half, half:-half, :]
    output = np.concatenate(np.concatenate(output, 1), 1)[:h, :w]
    return output.argmax(axis=-1).astype(np.uint8)


def dataset(tmp: Path) -> tuple[DataSpec, str]:
    from trainables.data.classmaps import get_class_map

    real = SHARED / "nasa-benchmark" / "EBC1"
    if (real / "test").is_dir():
        return DataSpec(root=real, classes=get_class_map("ebc")), "real EBC1"
    from trainables.data.synth import generate

    root = generate("ebc", tmp / "ebc", seed=0, n_train=4, n_val=1, n_test=2, size=1024)
    return DataSpec(root=root, classes=get_class_map("ebc")), "synthetic EBC"


def train_package(spec: DataSpec, data, out: Path, *, epochs: int) -> Path:
    """A briefly trained Unet-resnet18 (so that class maps have real boundaries), packaged."""
    cfg = SegmentationConfig(encoder="resnet18", decoder="Unet", lr=1e-3, crop=256,
                             batch_size=4, samples_per_epoch=16, augment="superalloy")  # fmt: skip
    trial = SegmentationTrial(cfg, data, resolve_runtime("fp32", "auto", use_cuda=False))
    for epoch in range(epochs):
        loss = trial.train_epoch()
        trial.epoch += 1
        print(f"  training epoch {epoch + 1}/{epochs}: loss {loss:.3f}", flush=True)
    meta = {"encoder": "resnet18", "decoder": "Unet", "tile": 1024, "overlap": 128,
            "batch": 4, "classes": class_map_record(spec.classes)["classes"],
            "provenance": {"dataset": spec.root.name, "members": [{"trial": "bench"}]}}  # fmt: skip
    return write_package(out, members=[trial.model.state_dict()], meta=meta)


def timed(fn, repeats: int) -> tuple[tuple[float, float], object]:
    """Best ``(wall s, CPU s)`` of ``repeats`` runs after a warm-up (allocator, oneDNN kernels).

    CPU time (all threads of this process) is printed beside wall time because on a shared,
    loaded machine wall time measures the neighbours as much as the code."""
    fn()
    best, out = (float("inf"), float("inf")), None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        best = min(best, (time.perf_counter() - t0, time.process_time() - c0))
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, help="test images to segment")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs of 16 crops")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per image (best)")
    parser.add_argument("--model", type=Path, help="an exported package instead of training")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        spec, label = dataset(Path(tmp))
        data = load_dataset(spec)
        test = data.splits["test"]
        images = [im for im in test.images if im.shape[:2] == (1024, 1024)][: args.images]
        print(f"data: {label}, {len(images)} test image(s) of 1024², {torch.get_num_threads()} "
              f"threads, load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
        pkg = args.model or train_package(spec, data, Path(tmp) / "model", epochs=args.epochs)
        # the reference runs smp's model as trained (NCHW, BatchNorm kept), as NASA's code does
        plain = load_model(pkg, device="cpu", precision="fp32", optimise=False)
        variants = {"ours fp32, not optimised": plain,
                    "ours fp32": load_model(pkg, device="cpu", precision="fp32")}  # fmt: skip
        if cpu_has_bf16():
            variants["ours bf16"] = load_model(pkg, device="cpu", precision="bf16")
        report(images, plain.models[0], len(plain.classes), variants, repeats=args.repeats)


def report(images, ref_model, classes: int, variants, *, repeats: int) -> None:
    wall = dict.fromkeys(["reference fp32", *variants], 0.0)
    cpu = dict.fromkeys(wall, 0.0)
    agree: dict[str, list[float]] = {name: [] for name in variants}
    for k, image in enumerate(images):
        (w, c), ref = timed(lambda im=image: reference_inference(ref_model, im, classes), repeats)
        wall["reference fp32"] += w
        cpu["reference fp32"] += c
        line = [f"image {k + 1}: reference {w:.2f} s (CPU {c:.2f} s)"]
        for name, model in variants.items():
            (w, c), mask = timed(lambda im=image, m=model: m.predict(im), repeats)
            wall[name] += w
            cpu[name] += c
            agree[name].append(float((mask == ref).mean()))
            line.append(f"{name} {w:.2f} s (CPU {c:.2f} s)")
        print(", ".join(line), flush=True)
    mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    print(f"\n{'method':<26}{'wall s/img':>11}{'MP/s':>7}{'speed-up':>10}"
          f"{'CPU s/img':>11}{'speed-up':>10}{'agreement':>11}")  # fmt: skip
    ref_w, ref_c = wall["reference fp32"], cpu["reference fp32"]
    for name in wall:
        share = f"{100 * min(agree[name]):.2f}%" if name in agree else "-"
        print(f"{name:<26}{wall[name] / len(images):>11.2f}{mp / wall[name]:>7.2f}"
              f"{ref_w / wall[name]:>9.1f}x{cpu[name] / len(images):>11.2f}"
              f"{ref_c / cpu[name]:>9.1f}x{share:>11}")  # fmt: skip
    print("targets: >= 5x (fp32), >= 12x (best CPU setting), agreement >= 99.5% (worst image)")
    print(f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
