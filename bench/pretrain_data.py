"""Pretraining data: peak memory and images/s of the streamed loader against the in-memory one.

Writes synthetic micrographs once (``--root``, default /tmp/microsweep-bench-pretrain), then
measures side by side, each case in a fresh subprocess:

- peak memory (PSS of the process and its loader workers, sampled every 50 ms) of one
  pretraining epoch of ``samples`` images for ``--small`` and ``--large`` image counts, with
  the streamed file index (``trainables.classify_data``) and with every image decoded into
  memory first (the pre-issue-14 loader);
- loader images/s (decode + augment, no training step) streamed with ``--workers`` worker
  processes against in-memory arrays augmented in the training process;
- per image: decode, augment and a training step (resnet18, fp32, batch 16), to say what
  limits throughput.

Run: ``.venv/bin/python bench/pretrain_data.py [--small 5000 --large 20000 --side 512]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_images(root: Path, count: int, side: int) -> Path:
    """``count`` JPEG micrograph-like textures in 4 classes (written once, then reused)."""
    import cv2

    done = root / f"n{count}-s{side}"
    if (done / "train").is_dir():
        return done
    rng = np.random.default_rng(0)
    for split, n in (("train", count), ("val", max(8, count // 50))):
        for i in range(n):
            c = i % 4
            sub = done / split / f"class{c}"
            sub.mkdir(parents=True, exist_ok=True)
            small = rng.random((side // (4 << c), side // (4 << c)), dtype=np.float32)
            img = cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)
            cv2.imwrite(str(sub / f"{i:06d}.jpg"), (img * 255).clip(0, 255).astype(np.uint8))
    return done


def _tree_pss(pid: int) -> int:
    """PSS bytes (shared pages split between their users: forked loader workers share the
    parent's) of ``pid`` and its descendants, from /proc (Linux)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                total = int(line.split()[1]) * 1024
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                total += _tree_pss(int(child))
    except (OSError, ValueError):
        pass
    return total


def peak_rss(fn) -> tuple[float, float]:
    """(seconds, peak MiB of this process and its children) while ``fn`` runs."""
    import os

    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_pss(os.getpid()))
            time.sleep(0.05)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join()
    return elapsed, peak[0] / 2**20


def case(folder: str, mode: str, samples: int, workers: int, size: int) -> dict:
    """One measurement in this process: ``mode`` is streamed, memory or loader-only variants."""
    import torch
    from torch.utils.data import DataLoader

    from trainables.classify import ImageDataset, train_augmentation
    from trainables.classify_data import load_image_folder, read_rgb

    torch.set_num_threads(1)
    out: dict = {}

    def run() -> None:
        data = load_image_folder(folder)
        split = data.splits["train"]
        images = [read_rgb(p) for p in split.paths] if mode == "memory" else None
        ds = ImageDataset(split, train_augmentation(size), seed=0, length=samples, images=images)
        loader = DataLoader(ds, batch_size=32, num_workers=0 if images else workers)
        t0 = time.perf_counter()
        n = sum(len(labels) for _, labels in loader)
        out["images_per_s"] = n / (time.perf_counter() - t0)
        out["files"] = len(split)

    out["seconds"], out["peak_mib"] = peak_rss(run)
    return out


def per_image(folder: str, size: int) -> dict:
    """Milliseconds per image of decode, augment and a training step."""
    import torch

    from trainables.classify import ClassificationLoss, Classifier, train_augmentation
    from trainables.classify_data import load_image_folder, read_rgb
    from trainables.loop import train_one_epoch
    from trainables.runtime import Runtime

    torch.set_num_threads(1)
    paths = load_image_folder(folder).splits["train"].paths[:64]
    t0 = time.perf_counter()
    images = [read_rgb(p) for p in paths]
    decode = (time.perf_counter() - t0) / len(paths)
    aug = train_augmentation(size)
    t0 = time.perf_counter()
    crops = [aug(image=im)["image"] for im in images]
    augment = (time.perf_counter() - t0) / len(paths)
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
    batches = [(x[i : i + 16], torch.zeros(16, dtype=torch.long)) for i in range(0, 48, 16)]
    model = Classifier("resnet18", 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rt = Runtime(device=torch.device("cpu"))
    train_one_epoch(model, batches[:1], ClassificationLoss(), opt, rt)  # warm-up
    t0 = time.perf_counter()
    train_one_epoch(model, batches, ClassificationLoss(), opt, rt)
    step = (time.perf_counter() - t0) / 48
    return {"decode_ms": 1e3 * decode, "augment_ms": 1e3 * augment, "step_ms": 1e3 * step}


def subprocess_json(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/microsweep-bench-pretrain"))
    p.add_argument("--small", type=int, default=5000)
    p.add_argument("--large", type=int, default=20000)
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--size", type=int, default=224, help="training crop")
    p.add_argument("--samples", type=int, default=512, help="images per measured epoch")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        kind, folder, *rest = args.child
        result = (
            per_image(folder, int(rest[0]))
            if kind == "per_image"
            else case(folder, kind, int(rest[0]), int(rest[1]), int(rest[2]))
        )
        print(json.dumps(result))
        return
    t0 = time.perf_counter()
    folders = {n: write_images(args.root, n, args.side) for n in (args.small, args.large)}
    print(f"images ready in {time.perf_counter() - t0:.0f} s under {args.root}")
    rows = {}
    for n, folder in folders.items():
        for mode in ("streamed", "memory"):
            extra = (str(args.samples), str(args.workers), str(args.size))
            rows[(n, mode)] = r = subprocess_json(mode, str(folder), *extra)
            print(f"{n:6d} images {mode:8s}: peak {r['peak_mib']:7.0f} MiB  "
                  f"loader {r['images_per_s']:6.1f} img/s  ({r['seconds']:.0f} s)")  # fmt: skip
    small, large = args.small, args.large
    growth = rows[(large, "streamed")]["peak_mib"] / rows[(small, "streamed")]["peak_mib"]
    speed = rows[(small, "streamed")]["images_per_s"] / rows[(small, "memory")]["images_per_s"]
    print(f"streamed peak memory {large} vs {small} images: {growth:.2f}x")
    print(f"streamed ({args.workers} workers) / in-memory loader images/s: {speed:.2f}x")
    cost = subprocess_json("per_image", str(folders[small]), str(args.size))
    print("per image: decode {decode_ms:.1f} ms, augment {augment_ms:.1f} ms, "
          "training step (resnet18 fp32, 1 thread) {step_ms:.1f} ms".format(**cost))  # fmt: skip


if __name__ == "__main__":
    main()
