"""Pretraining data: peak memory and images/s of the streamed loader against the in-memory one.

Writes ``--distinct`` (default: ``--large``) synthetic 512² micrographs once per format of
``--formats`` (PNG, compressed; TIFF, uncompressed as microscopes and the NASA benchmark
store them) with ``microsweep data synth micronet`` (``--root``, default
/tmp/microsweep-bench-pretrain); the cases read them through ``path,label,split`` manifests of
that many entries (cycling over the files when there are fewer: the loader's memory depends on
the number of entries, not on whether they are distinct files). Then measures, each case in a
fresh subprocess:

- peak memory (PSS of the process and its loader workers, sampled every 50 ms) of one
  loader epoch of ``samples`` images for ``--small``, ``--mid`` and ``--large`` image counts,
  streamed from the file index (``trainables.classify_data``); the in-memory loader (every
  image decoded to RGB first, the pre-issue-14 loader) for ``--small`` (first format only);
- per format, loader images/s (decode + augment + collate, no training step) and CPU ms per
  delivered image of all its processes, streamed with ``--workers`` worker processes against
  the in-memory arrays augmented in the training process, alternating, ``--rounds`` times
  each, on the ``--small`` set, without the memory probe (its /proc reads cost CPU);
- CPU milliseconds per image of each stage (decode, augment grey / RGB, a resnet18 training
  step), to say what limits throughput.

Run: ``.venv/bin/python bench/pretrain_data.py [--small 5000 --large 20000 --side 512]``
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
N_CLASSES = 8


def write_images(root: Path, count: int, side: int, fmt: str) -> Path:
    """``count`` synthetic micrographs in 8 classes as ``fmt`` files (written once, reused)."""
    from trainables.data.synth import generate

    done = root / (f"micronet-{count}-{side}" + ("" if fmt == "png" else f"-{fmt}"))
    record = done / "synth.json"
    if not record.is_file() or '"complete": true' not in record.read_text():
        per_class = count // N_CLASSES
        generate("micronet", done, n_train=per_class, n_val=max(1, per_class // 50),
                 size=side, progress=True, overwrite=True, image_format=fmt)  # fmt: skip
    return done


def manifest(folder: Path, count: int) -> Path:
    """A ``path,label,split`` manifest of ``count`` train entries (``count / 8`` per class,
    cycling over the class's files when it has fewer) and all val files of ``folder``."""
    out = folder.parent / f"{folder.name}-{count}.csv"
    rows = []
    for split in ("train", "val"):
        for cls in sorted(p.name for p in (folder / split).iterdir()):
            files = sorted((folder / split / cls).glob("*.*"))
            if split == "train":
                files = [files[i % len(files)] for i in range(count // N_CLASSES)]
            rows += [(str(f), cls, split) for f in files]
    with out.open("w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label", "split"), *rows])
    return out


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


def _load(source: str):
    from trainables.classify_data import load_image_folder, load_manifest

    return load_manifest(source) if source.endswith(".csv") else load_image_folder(source)


def _cpu_s() -> float:
    """CPU seconds of this process and its reaped children (the loader's workers)."""
    import resource

    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def case(source: str, mode: str, samples: int, workers: int, size: int, probe: bool) -> dict:
    """One measurement in this process: ``mode`` is streamed or memory. With ``probe`` the
    peak memory is sampled too (reading /proc every 50 ms costs CPU: ~0.3 ms per image of the
    streamed loader's 3 processes, so speed cases run without it)."""
    import torch
    from torch.utils.data import DataLoader

    from trainables.classify import (
        ImageDataset,
        collate_images,
        loader_worker_init,
        train_augmentation,
    )
    from trainables.classify_data import read_rgb

    torch.set_num_threads(1)
    out: dict = {}

    def run() -> None:
        split = _load(source).splits["train"]
        images = [read_rgb(p) for p in split.paths] if mode == "memory" else None
        ds = ImageDataset(split, train_augmentation(size), seed=0, length=samples, images=images)
        if images:  # the pre-issue-14 loader: decoded arrays, augmented in this process
            loader = DataLoader(ds, batch_size=32, collate_fn=collate_images)
        else:  # as PretrainTrial builds it
            loader = DataLoader(ds, batch_size=32, num_workers=workers, prefetch_factor=2,
                                worker_init_fn=loader_worker_init,
                                collate_fn=collate_images)  # fmt: skip
        t0, cpu0 = time.perf_counter(), _cpu_s()
        n = sum(len(labels) for _, labels in loader)
        out["images_per_s"] = n / (time.perf_counter() - t0)
        del loader  # its workers exit and are reaped: their CPU time is counted
        out["cpu_ms"] = 1e3 * (_cpu_s() - cpu0) / n
        out["files"] = len(split)

    if probe:
        out["seconds"], out["peak_mib"] = peak_rss(run)
    else:
        t0 = time.perf_counter()
        run()
        out["seconds"], out["peak_mib"] = time.perf_counter() - t0, float("nan")
    return out


def _cpu_ms(fn, items: list) -> tuple[float, list]:
    """CPU (not wall) milliseconds per item of ``fn`` in this process: less disturbed by
    other load on a shared machine; and the results."""
    t0 = time.process_time()
    out = [fn(x) for x in items]
    return 1e3 * (time.process_time() - t0) / len(items), out


def per_image(source: str, size: int) -> dict:
    """CPU milliseconds per image of decode, augment and a training step, one thread."""
    import cv2
    import torch

    from trainables.classify import ClassificationLoss, Classifier, train_augmentation
    from trainables.classify_data import read_pixels, read_rgb
    from trainables.loop import train_one_epoch
    from trainables.runtime import Runtime

    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # as in the loader's workers
    train = _load(source).splits["train"]
    paths = [train.paths[i] for i in range(0, len(train), max(1, len(train) // 64))][:64]
    decode_rgb, rgb = _cpu_ms(read_rgb, paths)
    decode, grey = _cpu_ms(read_pixels, paths)
    aug = train_augmentation(size)
    augment_rgb, _ = _cpu_ms(lambda im: aug(image=im)["image"], rgb)
    augment, crops = _cpu_ms(lambda im: aug(image=im)["image"], grey)
    x = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2)).expand(-1, 3, -1, -1)
    batches = [(x[i : i + 16], torch.zeros(16, dtype=torch.long)) for i in range(0, 48, 16)]
    model = Classifier("resnet18", 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rt = Runtime(device=torch.device("cpu"))
    train_one_epoch(model, batches[:1], ClassificationLoss(), opt, rt)  # warm-up
    t0 = time.process_time()
    train_one_epoch(model, batches, ClassificationLoss(), opt, rt)
    step = 1e3 * (time.process_time() - t0) / 48
    grey_share = float(np.mean([im.shape[2] == 1 for im in grey]))
    return {"decode_ms": decode, "decode_rgb_ms": decode_rgb, "augment_ms": augment,
            "augment_rgb_ms": augment_rgb, "step_ms": step, "grey": grey_share}  # fmt: skip


def subprocess_json(*args: str) -> dict:
    cmd = [sys.executable, __file__, "--child", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def uptime() -> str:
    return os.popen("uptime").read().strip()


def main() -> None:
    args = parse_args()
    if args.child is not None:
        kind, source, *rest = args.child
        result = (
            per_image(source, int(rest[0]))
            if kind == "per_image"
            else case(source, kind, int(rest[0]), int(rest[1]), int(rest[2]), rest[3] == "probe")
        )
        print(json.dumps(result))
        return
    print(uptime())
    for n, fmt in enumerate(args.formats):
        t0 = time.perf_counter()
        folder = write_images(args.root, args.distinct or args.large, args.side, fmt)
        counts = sorted({args.small, *args.mid, args.large}) if n == 0 else [args.small]
        sources = {c: str(manifest(folder, c)) for c in counts}
        print(f"== {fmt}: {args.distinct or args.large} images ready in "
              f"{time.perf_counter() - t0:.0f} s under {folder}")  # fmt: skip
        if n == 0:  # memory does not depend on the files' format
            memory_cases(args, sources)
        speed_cases(args, sources[args.small], fmt)
        stage_costs(args, sources[args.small])
    print(uptime())


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/microsweep-bench-pretrain"))
    p.add_argument("--small", type=int, default=5000)
    p.add_argument("--large", type=int, default=20000)
    p.add_argument("--mid", type=int, nargs="*", default=[], help="more streamed-only counts")
    p.add_argument("--distinct", type=int, default=None, help="images written (default: large)")
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--size", type=int, default=224, help="training crop")
    p.add_argument("--formats", nargs="+", default=["png", "tif"], help="files' formats")
    p.add_argument("--samples", type=int, default=2048, help="images per measured epoch")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2, help="alternations of the speed cases")
    p.add_argument("--memory-max", type=int, default=5000, help="largest in-memory case")
    p.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    return p.parse_args()


def _line(label: str, r: dict) -> str:
    peak = "" if r["peak_mib"] != r["peak_mib"] else f"peak {r['peak_mib']:7.0f} MiB  "
    load = uptime().split("load average: ")[1]
    return (f"{label}: {peak}loader {r['images_per_s']:6.1f} img/s, {r['cpu_ms']:.1f} ms "
            f"CPU/img  ({r['seconds']:.0f} s)  [{load}]")  # fmt: skip


def memory_cases(args: argparse.Namespace, sources: dict[int, str]) -> None:
    """Peak memory of one loader epoch, streamed for every count, in-memory for the small."""
    extra = (str(args.samples), str(args.workers), str(args.size), "probe")
    peak: dict[tuple[int, str], float] = {}
    for n, source in sources.items():
        for mode in ("streamed", "memory"):
            if mode == "memory" and (n > args.memory_max or n != args.small):
                continue
            r = subprocess_json(mode, source, *extra)
            peak[(n, mode)] = r["peak_mib"]
            print(_line(f"{n:6d} images {mode:8s}", r), flush=True)
    small, large = args.small, args.large
    peaks = ", ".join(f"{peak[(n, 'streamed')]:.0f} MiB ({n})" for n in sources)
    growth = peak[(large, "streamed")] / peak[(small, "streamed")]
    print(f"streamed peak memory by images: {peaks}; {large} vs {small}: {growth:.2f}x; "
          f"in-memory {peak[(small, 'memory')]:.0f} MiB ({small})")  # fmt: skip


def speed_cases(args: argparse.Namespace, source: str, fmt: str) -> None:
    """Streamed vs in-memory images/s, alternating, without the memory probe."""
    extra = (str(args.samples), str(args.workers), str(args.size), "speed")
    rows: dict[str, list[dict]] = {"streamed": [], "memory": []}
    for _ in range(args.rounds):
        for mode in rows:
            rows[mode].append(r := subprocess_json(mode, source, *extra))
            print(_line(f"{fmt} {args.small:6d} images {mode:8s}", r), flush=True)
    rate = {m: float(np.mean([r["images_per_s"] for r in v])) for m, v in rows.items()}
    cpu = {m: float(np.mean([r["cpu_ms"] for r in v])) for m, v in rows.items()}
    print(f"{fmt}: streamed ({args.workers} workers) / in-memory loader images/s: "
          f"{rate['streamed'] / rate['memory']:.2f}x ({rate['streamed']:.0f} vs "
          f"{rate['memory']:.0f}); CPU per delivered image (all loader processes): streamed "
          f"{cpu['streamed']:.1f} ms, in-memory {cpu['memory']:.1f} ms")  # fmt: skip


def stage_costs(args: argparse.Namespace, source: str) -> None:
    cost = subprocess_json("per_image", source, str(args.size))
    print("CPU per image: decode {decode_ms:.2f} ms (to RGB {decode_rgb_ms:.2f}), augment "
          "{augment_ms:.2f} ms (RGB {augment_rgb_ms:.2f}), training step (resnet18 fp32, "
          "1 thread) {step_ms:.1f} ms; grey share {grey:.0%}".format(**cost))  # fmt: skip
    stream_ms = cost["decode_ms"] + cost["augment_ms"]
    print(f"limit: streamed loader ~{1e3 * args.workers / stream_ms:.0f} img/s of CPU on "
          f"{args.workers} workers (decode {cost['decode_ms'] / stream_ms:.0%}), in-memory "
          f"~{1e3 / cost['augment_rgb_ms']:.0f} img/s (augment only); a training step costs "
          f"{cost['step_ms'] / stream_ms:.0f}x an image's decode + augment")  # fmt: skip


if __name__ == "__main__":
    main()
