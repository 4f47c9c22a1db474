"""The experiment file, parsed and validated once into a frozen, typed :class:`Experiment`.

Example::

    exp = load_experiment("spaces/presets/demo.yaml", overrides=["scheduler.max_epochs=4"])

Every problem is one :class:`~core.errors.UserError` line naming the key, the rule and the
value received, e.g. ``scheduler.grace_epochs must be <= scheduler.max_epochs, but got 50 > 20``.
Numbers may be written as people write them (``1e-3``; see :mod:`core.yamlio`). The kind of
trial (``kind``) is a task of :mod:`trainables.task`; ``search.algorithm`` and
``scheduler.name`` are strategies of :mod:`search.strategies`.
Relative ``data.root`` is taken from the file's folder; relative ``storage`` from the current
working directory. ``storage`` may also be a pyarrow filesystem URI (``s3://bucket/runs``,
``gs://...``, ``file:///...``); the run folder is ``STORAGE/NAME`` either way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from core.errors import UserError, closest
from core.storage import Location, is_uri, local_path
from core.yamlio import load_yaml
from search.strategies import get_scheduler, get_searcher, list_schedulers, list_searchers
from spaces.dimensions import Dimension, SpaceError, parse_space
from trainables.task import Task, get_task
from trainables.weights_dir import weights_dir_from_key  # issue 13

KEEP = ("best", "last", "all")  # fault.keep: what an ended trial's folder keeps
TOP_KEYS = (
    "name", "kind", "data", "space", "repeats", "search", "scheduler", "train", "resources",
    "storage", "fault",
    "weights",  # issue 13: a fetched weights folder (trainables.weights_dir)
)  # fmt: skip
RESERVED = ("seed", "max_epochs")  # set from `repeats` and `scheduler.max_epochs`
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Search:
    algorithm: str = "grid"  # a name in search.strategies.SEARCHERS
    num_samples: int = 1  # grid: draws of the distributions per grid point; else: trials
    seed: int = 0
    max_concurrent: int | None = None
    points: tuple[Mapping[str, Any], ...] = ()  # `listed`: the configurations to run


@dataclass(frozen=True)
class SchedulerSettings:
    name: str = "asha"  # a name in search.strategies.SCHEDULERS
    max_epochs: int = 100
    grace_epochs: int = 10
    reduction_factor: int = 3

    def rungs(self) -> list[int]:
        """The epochs at which the scheduler compares trials ([] for FIFO)."""
        from search.strategies import get_scheduler

        return get_scheduler(self.name).rungs(self)


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    gpu: float | Literal["auto"] = 0.0
    workers_per_trial: int = 1  # data-parallel workers per trial, each with cpu/gpu above


@dataclass(frozen=True)
class Fault:
    max_failures: int = 2  # retries of a crashed trial from its last checkpoint
    checkpoints_to_keep: int = 2
    keep: Literal["best", "last", "all"] = "best"  # what an ended trial keeps (docs/storage.md)


@dataclass(frozen=True)
class Experiment:
    name: str
    kind: str
    space: Mapping[str, Dimension]
    data: Any = None  # the validated `data:` block (trainables.data.spec.DataSpec)
    repeats: int = 1
    search: Search = field(default_factory=Search)
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    train: Mapping[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    fault: Fault = field(default_factory=Fault)
    storage: Location = field(default_factory=lambda: Location("runs"))  # path or URI
    base_dir: Path = Path(".")  # the experiment file's folder
    weights: Path | None = None  # issue 13: `weights:` folder, relative to the file's folder
    stage: str = "search"  # the confirm stage of `recommend` runs in the same run folder
    fold: int | None = None  # `recommend --folds`: the confirm stage's fold (RUN/confirm/foldN)
    raw: Mapping[str, Any] = field(default_factory=dict)  # the validated file, for later stages

    @property
    def run_dir(self) -> Location:
        return self.storage / self.name

    @property
    def ray_dir(self) -> Location:
        """Ray's experiment folder: the run folder itself, or ``RUN/<stage>`` after search
        (``RUN/<stage>/fold<N>`` for one fold of ``recommend --folds``)."""
        if self.stage == "search":
            return self.run_dir
        stage = self.run_dir / self.stage
        return stage if self.fold is None else stage / f"fold{self.fold}"

    @property
    def seeds(self) -> list[int]:
        return [self.search.seed + i for i in range(self.repeats)]

    @property
    def task(self) -> Task:
        return get_task(self.kind)


def base_config(exp: Experiment) -> dict[str, Any]:
    """What every trial gets besides its point: the ``train`` block, ``max_epochs`` and the
    weights folder (resolved here, on the driver)."""
    from search.weights import trial_weights

    return {**exp.train, **trial_weights(exp), "max_epochs": exp.scheduler.max_epochs}


def load_experiment(path: str | Path, *, overrides: list[str] = ()) -> Experiment:
    """Read ``path`` with ``yaml.safe_load``, apply ``--set`` overrides, validate."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"experiment file '{path}' does not exist")
    try:
        raw = load_yaml(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"experiment file '{path}'{where}: not valid YAML") from None
    if not isinstance(raw, dict):
        raise UserError(f"experiment file '{path}' must hold a mapping of keys")
    for item in overrides:
        apply_override(raw, item)
    return parse_experiment(raw, base_dir=path.resolve().parent)


def apply_override(raw: dict[str, Any], item: str) -> None:
    """``key.sub=value`` (value parsed as a YAML scalar or flow list) set into ``raw``."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set expects key.sub=value, but got {item!r}")
    try:
        value = load_yaml(text) if text.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {key}: value {text!r} is not valid YAML") from None
    parts = key.strip().split(".")
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise UserError(f"--set {key}: `{where}` is not a mapping (it is {child!r})")
        node = child
    node[parts[-1]] = value


def parse_experiment(raw: Mapping[str, Any], *, base_dir: Path) -> Experiment:
    """Validate a loaded mapping; see the module docstring."""
    _check_keys("", raw, TOP_KEYS)
    name = _name(raw.get("name"))
    kind = str(raw.get("kind", "segmentation"))
    task = _task(kind)
    try:
        space = parse_space(_mapping(raw, "space", required=True))
    except SpaceError as err:
        raise UserError(str(err)) from None
    train = _resolve_paths(_mapping(raw, "train"), base_dir)
    search = _search(_mapping(raw, "search"))
    exp = Experiment(
        name=name,
        kind=kind,
        space=MappingProxyType(space),
        data=None if raw.get("data") is None else task.parse_data(raw["data"], base_dir=base_dir),
        repeats=_int("repeats", raw.get("repeats", 1), low=1),
        search=search,
        scheduler=_scheduler(_mapping(raw, "scheduler")),
        train=MappingProxyType(train),
        resources=_resources(_mapping(raw, "resources")),
        fault=_fault(_mapping(raw, "fault")),
        storage=_storage(raw.get("storage", "runs")),
        base_dir=base_dir,
        raw=MappingProxyType(dict(raw)),
        weights=weights_dir_from_key(raw.get("weights"), base_dir),  # issue 13
    )
    _check_trial_keys(exp)
    _check_combination(exp)
    return exp


PATH_KEYS = ("zoo_dir",)  # `train:` keys naming a local folder


def _resolve_paths(train: Mapping[str, Any], base_dir: Path) -> dict[str, Any]:
    """Relative folders in ``train:`` are the experiment file's, as ``data.root`` is: a trial
    runs in Ray's own working folder, where a relative zoo would be written and lost."""
    out = dict(train)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and value and not is_uri(value):
            out[key] = str(local_path(value, base_dir))
    return out


def _check_keys(prefix: str, raw: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in raw:
        if key not in allowed:
            close = closest(str(key), allowed)
            hint = f"; did you mean `{prefix}{close}`?" if close else ""
            raise UserError(f"unknown key `{prefix}{key}`{hint} (allowed: {', '.join(allowed)})")


def _mapping(raw: Mapping[str, Any], key: str, *, required: bool = False) -> Mapping[str, Any]:
    value = raw.get(key)
    if value is None:
        if required:
            raise UserError(f"`{key}` is missing; it must be a mapping")
        return {}
    if not isinstance(value, Mapping):
        raise UserError(f"`{key}` must be a mapping, but got {value!r}")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise UserError(
            f"`name` must be a folder-safe name (letters, digits, '-', '_', '.'), but got {value!r}"
        )
    return value


def _task(kind: str) -> Task:
    try:
        return get_task(kind)
    except UserError as err:
        raise UserError(f"`kind`: {err}") from None


def _int(key: str, value: Any, *, low: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key} must be an integer, but got {value!r}")
    if low is not None and value < low:
        raise UserError(f"{key} must be >= {low}, but got {value}")
    return value


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        close = closest(str(value), choices, cutoff=0.6)
        hint = f"; did you mean '{close}'?" if close else ""
        raise UserError(f"{key} must be one of {', '.join(choices)}, but got {value!r}{hint}")
    return value


def _search(raw: Mapping[str, Any]) -> Search:
    _check_keys("search.", raw, ("algorithm", "num_samples", "seed", "max_concurrent", "points"))
    max_conc = raw.get("max_concurrent")
    points = raw.get("points") or ()
    if not isinstance(points, list | tuple) or not all(isinstance(p, Mapping) for p in points):
        raise UserError(f"search.points must be a list of mappings, but got {points!r}")
    return Search(
        algorithm=_choice("search.algorithm", raw.get("algorithm", "grid"), list_searchers()),
        num_samples=_int("search.num_samples", raw.get("num_samples", 1), low=1),
        seed=_int("search.seed", raw.get("seed", 0), low=0),
        max_concurrent=None if max_conc is None else _int("search.max_concurrent", max_conc, low=1),
        points=tuple(MappingProxyType(dict(p)) for p in points),
    )


def _scheduler(raw: Mapping[str, Any]) -> SchedulerSettings:
    keys = ("name", "max_epochs", "grace_epochs", "reduction_factor")
    _check_keys("scheduler.", raw, keys)
    name = _choice("scheduler.name", raw.get("name", "asha"), list_schedulers())
    max_epochs = _int("scheduler.max_epochs", raw.get("max_epochs", 100), low=1)
    grace = _int("scheduler.grace_epochs", raw.get("grace_epochs", min(10, max_epochs)), low=1)
    if grace > max_epochs and get_scheduler(name).stops_early:  # FIFO ignores the rung settings
        raise UserError(
            "scheduler.grace_epochs must be <= scheduler.max_epochs, "
            f"but got {grace} > {max_epochs}"
        )
    return SchedulerSettings(
        name=name,
        max_epochs=max_epochs,
        grace_epochs=grace,
        reduction_factor=_int("scheduler.reduction_factor", raw.get("reduction_factor", 3), low=2),
    )


def _number(key: str, value: Any, *, low: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UserError(f"{key} must be a number, but got {value!r}")
    if value < low:
        raise UserError(f"{key} must be >= {low}, but got {value}")
    return float(value)


def _resources(raw: Mapping[str, Any]) -> Resources:
    _check_keys("resources.", raw, ("cpu", "gpu", "workers_per_trial"))
    cpu = _number("resources.cpu", raw.get("cpu", 1), low=0.0)
    if cpu <= 0:
        raise UserError(f"resources.cpu must be > 0, but got {cpu}")
    gpu_raw = raw.get("gpu", 0)
    gpu = "auto" if gpu_raw == "auto" else _number("resources.gpu", gpu_raw, low=0.0)
    if gpu != "auto" and gpu > 1 and gpu != int(gpu):
        raise UserError(f"resources.gpu above 1 must be a whole number, but got {gpu}")
    workers = _int("resources.workers_per_trial", raw.get("workers_per_trial", 1), low=1)
    return Resources(cpu=cpu, gpu=gpu, workers_per_trial=workers)


def _fault(raw: Mapping[str, Any]) -> Fault:
    _check_keys("fault.", raw, ("max_failures", "checkpoints_to_keep", "keep"))
    return Fault(
        max_failures=_int("fault.max_failures", raw.get("max_failures", 2), low=0),
        checkpoints_to_keep=_int(
            "fault.checkpoints_to_keep", raw.get("checkpoints_to_keep", 2), low=1
        ),
        keep=_choice("fault.keep", raw.get("keep", "best"), KEEP),  # type: ignore[arg-type]
    )


def _storage(value: Any) -> Location:
    """Syntax only: whether the location can be reached is checked once before launch."""
    if isinstance(value, bool) or not isinstance(value, str | int | Path) or not str(value).strip():
        raise UserError(f"storage must be a folder path or a URI (s3://...), but got {value!r}")
    text = str(value).strip()
    if "://" in text and not is_uri(text):
        raise UserError(f"storage {text!r} is not a valid URI; write it like s3://bucket/runs")
    return Location.parse(text).absolute()


def _check_trial_keys(exp: Experiment) -> None:
    allowed = exp.task.config_keys()
    for block, keys in (("space", exp.space), ("train", exp.train)):
        for key in keys:
            if key in RESERVED:
                src = "repeats" if key == "seed" else "scheduler.max_epochs"
                raise UserError(f"`{block}.{key}` is set by `{src}`; remove it from `{block}`")
            if allowed is not None and key not in allowed:
                usable = tuple(k for k in allowed if k not in RESERVED)
                close = closest(key, usable, cutoff=0.6)
                hint = f"; did you mean `{block}.{close}`?" if close else ""
                raise UserError(f"unknown {exp.kind} setting `{block}.{key}`{hint}")
    both = sorted(set(exp.space) & set(exp.train))
    if both:
        raise UserError(f"`{both[0]}` is set in both `space` and `train`; keep one")


def _check_combination(exp: Experiment) -> None:
    get_searcher(exp.search.algorithm).check(exp)
    workers = exp.resources.workers_per_trial
    if workers != 1 and not exp.task.multi_worker:
        raise UserError(
            f"task {exp.kind!r} trains each trial in one process: "
            f"`resources.workers_per_trial` must be 1, but got {workers}"
        )
    if exp.data is None and exp.task.needs_data:
        raise UserError("`data` is missing; give the dataset block (root, classes)")
