"""``microsweep data synth micronet``: images/s of this checkout against an earlier revision.

Extracts ``--before`` (a git revision, default ``main``) into a temporary folder, then runs
the real CLI of both side by side, alternating, ``--rounds`` times each, on the same
arguments (every worker process the CLI starts included). Prints per run: wall images/s and
CPU milliseconds per image (user + sys of the CLI and its worker processes; less sensitive
to other load on a shared machine than wall time), the mean file size, then the ratios.

Run: ``.venv/bin/python bench/synth_micronet.py [--per-class 25 --size 512 --before main]``
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "spaces", "trainables", "search", "analysis")


def checkout(rev: str, dest: Path) -> Path:
    """The Python packages of ``rev`` extracted under ``dest`` (a PYTHONPATH root)."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, *PACKAGES], capture_output=True, check=True
    ).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def synth(code: Path, out: Path, per_class: int, size: int) -> dict:
    """One ``data synth micronet`` run of the code under ``code``: wall s, CPU s, files."""
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(code)}
    cmd = [sys.executable, "-m", "search", "data", "synth", "micronet", str(out)]
    cmd += ["--size", str(size), "--n-train", str(per_class), "--n-val", "1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # cwd=code too: `python -m` puts the working folder first on sys.path
    subprocess.run(cmd, env=env, cwd=code, capture_output=True, check=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    files = list(out.rglob("*.png"))
    size_kib = sum(f.stat().st_size for f in files) / len(files) / 1024
    return {"wall": wall, "cpu": cpu, "n": len(files), "kib": size_kib}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--before", default="main", help="git revision to compare against")
    p.add_argument("--per-class", type=int, default=25, help="train images per class (8 classes)")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print(os.popen("uptime").read().strip())
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        codes = {"before": checkout(args.before, Path(tmp) / "before"), "after": REPO}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(args.rounds):
            for name, code in codes.items():
                r = synth(code, Path(tmp) / f"out-{name}", args.per_class, args.size)
                runs[name].append(r)
                print(f"{name:6s}: {r['n']} images {args.size}^2 in {r['wall']:5.1f} s = "
                      f"{r['n'] / r['wall']:6.1f} img/s, CPU {1e3 * r['cpu'] / r['n']:5.1f} "
                      f"ms/image, {r['kib']:.0f} KiB/file")  # fmt: skip
    rate = {k: sum(r["n"] for r in v) / sum(r["wall"] for r in v) for k, v in runs.items()}
    cpu = {k: sum(r["cpu"] for r in v) / sum(r["n"] for r in v) for k, v in runs.items()}
    print(f"images/s after / before: {rate['after'] / rate['before']:.2f}x "
          f"({rate['before']:.1f} -> {rate['after']:.1f}); CPU per image before / after: "
          f"{cpu['before'] / cpu['after']:.2f}x")  # fmt: skip
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
