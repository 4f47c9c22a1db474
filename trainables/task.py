"""The task registry: each kind of trial (segmentation, pretraining, ...) in one object.

A :class:`Task` registers in its own module (``trainables/segmentation_task.py``, whose
trainable is in ``trainables/segmentation.py``; ``trainables/pretraining.py``) and tells the
launcher everything it needs: the typed trial config, how to read and load the experiment's
``data:`` block, the objective and its mode, the feasibility check, the result columns, the
progress line of one epoch and how to load a trained model from a trial's checkpoint.
Nothing outside this registry switches on a kind's name.

Example::

    task = get_task("segmentation")
    task.metric                      # 'val_iou'
    task.build_config({"lr": "1e-3"}).lr   # 0.001 (a ConfigError names a bad key)
    list_tasks()                     # ('pretraining', 'replay', 'segmentation')

``kind: package.module:function`` names a custom trainable that follows the reporting contract
of docs/contracts.md; it is run like a segmentation trial, without a typed config.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from core import keys as K
from core.errors import UserError
from core.registry import Registry

TASKS: Registry[Task] = Registry("task", hint="a registered task, or package.module:function")
# each registers its task; a worker asking for one imports only its module (replay's workers
# then start without torch and smp: ~4 s of CPU each)
BUILTIN = {
    "segmentation": "trainables.segmentation_task",
    "pretraining": "trainables.pretraining",
    "replay": "trainables.replay",
}
Progress = Callable[[int, int], None]
BYTES_PER_VALUE = 4  # fp32 weights and optimiser moments


@dataclass(frozen=True)
class TrialStorage:
    """Bytes one trial writes to the run folder (``search.footprint`` sums them over a sweep).

    ``state``: one checkpoint's ``state.pt``; ``best``: the best weights, stored once per trial
    (``best/``); ``kept``: what ``fault.keep: best`` leaves of a trial that completes;
    ``running_extra``: what a running trial holds besides Tune's checkpoints and its best
    file (a data-parallel trial: Ray Train's checkpoint in ``train/``); ``outside``: what a
    completing trial writes outside the run folder (a pretraining trial's zoo entry)."""

    state: int
    best: int
    kept: int
    running_extra: int = 0
    outside: int = 0


class Task(ABC):
    """One kind of trial, as the launcher sees it. Subclasses set the class attributes."""

    name: ClassVar[str]
    metric: ClassVar[str]  # the per-epoch objective the trainable reports
    mode: ClassVar[str] = "max"
    best_key: ClassVar[str]  # the final report's best value of ``metric``
    epoch_keys: ClassVar[tuple[str, ...]]  # per-epoch values kept in epochs.parquet
    final_prefixes: ClassVar[tuple[str, ...]]  # final-report keys kept in trials.parquet
    config_type: ClassVar[type | None] = None  # a TypedConfig subclass; None: untyped
    needs_data: ClassVar[bool] = True  # an experiment must give a `data:` block
    multi_worker: ClassVar[bool] = False  # a trial may train on several workers (Ray Train)
    reuse_actors: ClassVar[bool] = False  # Ray may run trial after trial in one worker
    # False: an ended trial's row waits for the results writer's throttle (a task whose runs
    # are never resumed, e.g. replay, where one write per ended trial would dominate)
    write_each_end: ClassVar[bool] = True

    # --- the trial config -----------------------------------------------------------------
    def config_keys(self) -> tuple[str, ...] | None:
        """The keys a trial config may hold (None: any)."""
        return None if self.config_type is None else self.config_type.keys()

    def build_config(self, config: Mapping[str, Any]) -> Any:
        """The typed config (raises ConfigError/UserError on a bad value)."""
        return dict(config) if self.config_type is None else self.config_type.from_dict(config)

    def precheck(self, points: Sequence[Mapping[str, Any]], progress: Progress | None) -> None:
        """Batch work before :meth:`check` is asked point by point (e.g. caches to fill)."""
        return None

    def check(self, config: Mapping[str, Any]) -> str | None:
        """Why this trial config cannot be trained (one line), or None. Downloads nothing."""
        return None

    # --- data -------------------------------------------------------------------------------
    @abstractmethod
    def parse_data(self, raw: Any, *, base_dir: Path) -> Any:
        """The experiment's ``data:`` block, validated (UserError names ``data.<key>``)."""

    @abstractmethod
    def load_data(self, spec: Any, *, train: Mapping[str, Any]) -> Any:
        """Checked, decoded data for the object store (DataError lists every problem)."""

    def data_info(self, data: Any, *, spec: Any = None) -> dict[str, Any]:
        """What run.json records of the data (``dataset`` label, ``classes``,
        ``test_splits``, ...); ``spec`` is the experiment's validated ``data:`` block."""
        return {"dataset": getattr(data, "label", None), "classes": [], "test_splits": []}

    def prepare_run(self, data: Any, run_dir: Any) -> None:
        """Files the run folder needs before trials start (e.g. ground-truth masks)."""
        return None

    # --- running and reading ----------------------------------------------------------------
    @abstractmethod
    def trainable(self) -> Callable[..., None]:
        """The Ray Tune function trainable ``fn(config, *, data)``."""

    def tuner_trainable(self, function: Any, *, resources: Callable, workers: int) -> Any:
        """What the Tuner takes as trainable: ``function`` (Tune's function trainable, data
        bound) with ``resources`` (config -> ``{"cpu", "gpu"}``) per trial. Tasks that train
        a trial on several workers (``resources.workers_per_trial``) override this."""
        from ray import tune

        if workers != 1:
            raise UserError(
                f"task {self.name!r} trains each trial in one process: "
                f"`resources.workers_per_trial` must be 1, but got {workers}"
            )
        return tune.with_resources(function, resources)

    def is_final_key(self, key: str) -> bool:
        return key.startswith(self.final_prefixes) or key in self.final_prefixes

    def progress_line(self, result: Mapping[str, Any]) -> str | None:
        """One line for an epoch's report (None: not an epoch report)."""
        if self.metric not in result:
            return None
        parts = [f"epoch {int(result[K.EPOCH]):3d}"]
        for key in self.epoch_keys:
            value = result.get(key)
            if value is None:
                continue
            if key == K.LR:
                parts.append(f"lr {float(value):.1e}")
            elif key == K.WALL_S:
                parts.append(f"{float(value):.0f}s")
            elif key == K.DATA_WAIT_S:
                parts.append(f"data wait {float(value):.1f}s")
            else:
                parts.append(f"{key} {float(value):.4f}")
        return "  ".join(parts)

    def trial_storage(
        self, config: Mapping[str, Any], *, data: Any, workers: int = 1
    ) -> TrialStorage | None:
        """What one trial of ``config`` writes (``data``: the validated ``data:`` block;
        ``workers``: ``resources.workers_per_trial``). None: not known (no storage line in the
        dry run). Counts parameters on the meta device: nothing is allocated or downloaded."""
        return None

    def load_model(self, folder: Path) -> Any:
        """The trained model from a trial's final checkpoint folder."""
        raise UserError(f"task {self.name!r} cannot load a trained model")


def get_task(kind: str) -> Task:
    """The registered task, or a custom ``module:function`` task; unknown names in one line."""
    if kind in TASKS:  # e.g. a Ray worker that unpickled the task's data: no other imports
        return TASKS.get(kind)
    if kind in BUILTIN:
        importlib.import_module(BUILTIN[kind])
        return TASKS.get(kind)
    if ":" in str(kind):  # never a registered name: its worker imports no built-in trial
        return custom_task(kind)
    _load_builtin()
    return TASKS.get(kind)


def list_tasks() -> tuple[str, ...]:
    _load_builtin()
    return tuple(sorted(TASKS.names()))


def _load_builtin() -> None:
    for module in BUILTIN.values():
        importlib.import_module(module)


def custom_task(target: str) -> Task:
    """A task running ``package.module:function`` as a segmentation-like trial (imported when
    its trainable is first asked for: the launcher does so before Ray starts)."""
    from trainables.segmentation_task import CustomTask

    return CustomTask(target)


def import_function(target: str) -> Callable[..., None]:
    """``package.module:function``; a one-line UserError when it cannot be imported."""
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"kind {target!r}: cannot import module {module_name!r} ({err})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(f"kind {target!r}: module {module_name!r} has no function {func_name!r}")
    return func
