"""``microsweep init``: an experiment file for a dataset, from a preset, fitted to it and here.

Example::

    result = init_experiment("NewAlloy", classes="superalloy", out="exp.yaml")
    print(result.summary())

Steps: check the dataset with the rules of ``microsweep data check``; for a flat layout
(``images/`` + ``masks/``) without a split file, write one with the defaults of
``microsweep data split`` (seed 0, ratios 0.7/0.15/0.15; an existing one is reused); then write
the preset with ``data:`` filled in (paths relative to the experiment file unless they share only
the filesystem root), ``train.crop``
fitted to the training images (the largest multiple of 32 that is <= the smallest training
image side, at most the preset's crop) and ``resources`` fitted to this machine (a few trials
at once, ``gpu: auto``). Every problem is raised before anything is written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core import storage
from core.errors import UserError, unknown_name
from search.experiment import Experiment, load_experiment, parse_experiment
from spaces.presets import list_presets, preset_path

CROP_STEP = 32  # encoders downsample 5 times: crops must be multiples of 32
MAX_TRIALS_AT_ONCE = 4


@dataclass(frozen=True)
class InitResult:
    """What ``init`` wrote and why; ``summary()`` is what the CLI prints."""

    path: Path  # the experiment file
    experiment: Experiment
    check: Any  # trainables.data.check.CheckReport
    split_file: Path | None  # the dataset's split file, when it has one
    split_written: bool  # True when init wrote it
    crop: int
    smallest: tuple[int, int]  # smallest training image (H, W)
    trials_at_once: int

    def summary(self) -> str:
        lines = [self.check.format()]
        if self.split_file is not None:
            verb = "wrote" if self.split_written else "using"
            lines.append(f"{verb} split file {self.split_file}")
        res = self.experiment.resources
        h, w = self.smallest
        lines.append(
            f"wrote {self.path}: train.crop {self.crop} (smallest training image {h}x{w}), "
            f"resources cpu {res.cpu:g} per trial ({self.trials_at_once} at once), gpu {res.gpu}"
        )
        return "\n".join(lines)


def machine_cpus() -> int:
    """CPUs this process may use (the affinity mask in containers, else the core count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def fit_resources(cpus: int) -> tuple[dict[str, Any], int]:
    """``resources`` for ``cpus`` CPUs and the trials it runs at once.

    Up to 4 trials share the machine: on 2 cores two 1-thread trials gave 1.19x the throughput
    of one 2-thread trial (docs pitfalls); on big machines each trial gets more threads.
    """
    at_once = max(1, min(MAX_TRIALS_AT_ONCE, cpus))
    return {"cpu": max(1, cpus // at_once), "gpu": "auto"}, at_once


def fit_crop(smallest_side: int, *, cap: int) -> int:
    """The largest multiple of 32 <= ``smallest_side``, at most ``cap``."""
    crop = min(cap, smallest_side) // CROP_STEP * CROP_STEP
    if crop < CROP_STEP:
        raise UserError(
            f"training images must be at least {CROP_STEP} px on each side, but the smallest "
            f"is {smallest_side} px; use larger images"
        )
    return crop


def _smallest(check: Any) -> tuple[int, int]:
    """The smallest training image (H, W): split ``train``, else every image (flat layout)."""
    splits = {s.name: s for s in check.splits}
    train = splits.get("train") or splits.get("all")
    sizes = [tuple(int(v) for v in hw.split("x")) for hw in (train.sizes if train else {})]
    if not sizes:
        raise UserError(f"'{check.root}' has no readable training image; add images")
    return min(sizes, key=min)


def _preset(name: str) -> dict[str, Any]:
    if name not in list_presets():
        raise unknown_name("preset", name, list_presets())
    return yaml.safe_load(preset_path(name).read_text())


def _name(label: str) -> str:
    """An experiment name from the dataset label (letters, digits, ``_ . -``)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-._")
    return name or "experiment"


def _split_file(layout_kind: str, root: Path) -> tuple[Path | None, bool]:
    """The flat layout's split file: the default one ``data split`` writes, reused if there."""
    from trainables.data.splits import write_splits

    if layout_kind != "flat":
        return None, False
    default = root / "splits" / f"{root.name}-seed0.yaml"
    if default.is_file():
        return default, False
    return write_splits(root)[0], True


def _augment(classes: object, current: object) -> object:
    from trainables.augment import list_presets as augment_presets

    return classes if isinstance(classes, str) and classes in augment_presets() else current


def init_experiment(
    data_dir: str | Path,
    *,
    classes: str | Mapping[str, object],
    preset: str = "new-material",
    out: str | Path = "exp.yaml",
    split_file: str | None = None,
    force: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> InitResult:
    """Check ``data_dir`` and write the experiment file ``out`` (see the module docstring).

    ``split_file``: the dataset's own split file (relative to ``data_dir`` unless absolute);
    ``force``: replace an existing ``out``.
    """
    from trainables.data.check import check_dataset
    from trainables.data.spec import DataSpec

    root, out = Path(data_dir).expanduser(), Path(out).expanduser()
    if not root.is_dir():
        raise UserError(f"dataset folder '{root}' does not exist; give the folder of your images")
    if out.exists() and not force:
        raise UserError(f"'{out}' exists; pass --force to overwrite it or --out another file")
    raw = _preset(preset)
    block: dict[str, Any] = {"root": str(root.resolve()), "classes": classes}
    if split_file is not None:
        block["split_file"] = split_file
    spec = DataSpec.from_mapping(block, base_dir=Path.cwd())
    check = check_dataset(spec, progress=progress)
    check.raise_for_errors()
    smallest = _smallest(check)
    crop = fit_crop(min(smallest), cap=int((raw.get("train") or {}).get("crop", 256)))
    split_path, written = spec.split_file, False
    if split_path is None:
        split_path, written = _split_file(check.kind, spec.root)
    raw = _filled(raw, spec.root, split_path, classes, out, crop, label=check.label)
    resources, at_once = fit_resources(machine_cpus())
    raw["resources"] = resources
    parse_experiment(raw, base_dir=out.resolve().parent)  # every problem before writing
    text = f"# microsweep init: preset {preset} for {check.label}\n" + yaml.safe_dump(
        raw, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
    )
    storage.write_bytes(out, text.encode("utf-8"))
    exp = load_experiment(out)  # what `sweep` and `recommend` will read
    return InitResult(out, exp, check, split_path, written, crop, smallest, at_once)


def _filled(
    raw: dict[str, Any],
    root: Path,
    split: Path | None,
    classes: object,
    out: Path,
    crop: int,
    *,
    label: str,
) -> dict[str, Any]:
    """The preset with ``name``, ``data`` and ``train.crop`` (and the augment) set."""
    here = out.resolve().parent
    near = os.path.commonpath([root, here]) != os.path.sep  # else "../../.." to "/" helps none
    data: dict[str, Any] = {
        "root": Path(os.path.relpath(root, here)).as_posix() if near else str(root)
    }
    if split is not None:
        data["split_file"] = Path(os.path.relpath(split, root)).as_posix()
    data["classes"] = dict(classes) if isinstance(classes, Mapping) else classes
    train = dict(raw.get("train") or {})
    train["crop"] = crop
    train["augment"] = _augment(classes, train.get("augment", "superalloy"))
    return {**raw, "name": _name(label), "data": data, "train": train}
