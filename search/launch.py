"""The one launcher: every command that runs trials (sweep, train, pretrain, recommend) runs an
:class:`~search.experiment.Experiment` through :func:`run_sweep`, and :func:`start_ray` is the
one place Ray starts.

Example::

    from search.experiment import load_experiment
    from search.launch import run_sweep

    result = run_sweep(load_experiment("exp.yaml"))          # embedded local Ray
    result = run_sweep(exp, address="auto")                   # the cluster `ray start` made
    print(result.best)                                        # the best trial's row

Everything is checked before Ray starts: the experiment file, every planned trial's typed
config (:mod:`search.plan`), the run folder's storage and the dataset. Search settings
(``TuneConfig``: strategy, scheduler, concurrency) are built apart from job settings
(``RunConfig``: storage, failures, checkpoints, our results writer and progress lines).
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analysis import results as R
from core import storage
from core.errors import StorageError, UserError
from core.storage import Location
from search.console import Console, ray_output
from search.experiment import Experiment
from search.interrupt import EndWatch
from search.plan import Plan, make_plan
from search.progress import Printer, TrialProgress, stderr_line
from search.repair import repair_snapshot
from search.resume import TUNER_FILE, check_resumable
from search.storage_guard import storage_failures
from search.tuner import new_tuner, restore_tuner
from trainables.task import Progress

# Ray settings every driver of ours wants (set before ray is imported by the Tuner)
RAY_ENV = {
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",  # diverged/infeasible reports carry no metric
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_AIR_NEW_OUTPUT": "0",
}
TRAINED = (R.COMPLETED, R.STOPPED)  # statuses of trials that trained
EXPERIMENT_FILE = "experiment.json"  # RUN/experiment.json (see save_experiment)


class NothingTrained(UserError):
    """A sweep ended without a single trial that trained (the reasons are in trials.parquet)."""


@dataclass(frozen=True)
class SweepResult:
    run_dir: Location  # a local folder or a URI (core.storage)
    counts: dict[str, int]  # trials by status
    best: dict[str, Any] | None  # the best trial's row of trials.parquet
    plan: Plan
    trials: list[dict[str, Any]] = field(default_factory=list)


def start_ray(
    address: str | None, *, num_cpus: int | None = None, num_gpus: int | None = None
) -> None:
    """Start (or join) Ray once per process; a cluster that cannot be reached is one line.

    Without ``address`` (and without ``RAY_ADDRESS``, which Ray Jobs set for their entry
    point) a new local instance is started (``address="local"``): a Ray that already runs on
    the machine (an earlier ``ray start --head``, another sweep) is left alone instead of
    being joined with conflicting resource counts.
    """
    for key, value in RAY_ENV.items():
        os.environ.setdefault(key, value)
    import ray

    address = address or os.environ.get("RAY_ADDRESS") or None

    if ray.is_initialized():
        return
    if address:
        try:
            ray.init(address=address, log_to_driver=True, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(
                f"--address {address}: cannot reach the Ray cluster ({first}); check that "
                "its head runs (`ray status`) and that this machine may reach it"
            ) from None
        return
    ray.init(
        address="local",
        num_cpus=num_cpus or os.cpu_count(),
        num_gpus=num_gpus,
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        configure_logging=True,
        logging_level="warning",
    )


def run_sweep(
    experiment: Experiment,
    *,
    address: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
    printer: Printer = stderr_line,
    require_trained: bool = True,
    verbose: bool = False,
    callbacks: Sequence[Any] = (),
) -> SweepResult:
    """Check everything, launch (or resume) the Tuner, and summarise our results files.

    ``progress(done, total)`` follows the task's batch checks while planning; Ray's own
    output goes to ``RUN/logs/`` unless ``verbose`` (search.console); ``callbacks`` are extra
    Ray Tune callbacks (tests inject faults with them). Raises :class:`NothingTrained` (after
    the results are written) when ``require_trained`` and no trial trained.
    """
    exp, run_dir = experiment, experiment.run_dir
    with _storage_errors_are_user_errors():
        plan = _checked_plan(exp, resume=resume, progress=progress, printer=printer)
        if exp.stage == R.SEARCH:
            save_experiment(exp)
        data = load_data(exp)
        if data is not None:
            exp.task.prepare_run(data, run_dir)
        with ray_output(run_dir, verbose=verbose):
            start_ray(address)
            ended = EndWatch()
            extra = [progress_callback(exp, plan, printer), *callbacks, ended]
            tuner = (restore_tuner if resume else new_tuner)(exp, plan, data, callbacks=extra)
            with storage_failures():  # a full or unreachable storage: one line (docs/faults.md)
                tuner.fit()
        result = summarise(run_dir, plan)
    ended.check()  # Ctrl+C: one line, exit 130, --resume continues
    if require_trained and not any(result.counts.get(s) for s in TRAINED):
        raise NothingTrained(nothing_trained_line(result))
    return result


def _checked_plan(
    exp: Experiment, *, resume: bool, progress: Progress | None, printer: Printer
) -> Plan:
    """Everything that can be refused before work, cheapest first; the plan."""
    _check_run_folder(exp.ray_dir, resume=resume, printer=printer)
    exp.task.trainable()  # a custom trainable that cannot be imported: one line, here
    exp.run_dir.check_writable()  # a bucket typo, a read-only mount: one line
    plan = make_plan(exp, progress=progress)  # every trial config checked: no Ray yet
    if not plan.trials:
        reasons = "; ".join(f"{n}x {r}" for r, n in plan.reasons[:3]) or "no trials planned"
        raise UserError(f"experiment '{exp.name}': nothing to train: {reasons}")
    return plan


def progress_callback(exp: Experiment, plan: Plan, printer: Printer) -> Any:
    """One line per epoch for a single trial (train, pretrain); the live console for sweeps."""
    if plan.trials == 1:
        return TrialProgress(exp.task, plan, printer=printer)
    return Console.for_plan(plan, metric=exp.task.metric, mode=exp.task.mode)


def _check_run_folder(run_dir: Location, *, resume: bool, printer: Printer) -> None:
    """Refuse before any work: a started sweep without --resume, an unusable Ray state."""
    if resume:
        for repair in repair_snapshot(check_resumable(run_dir), run_dir):
            printer(f"microsweep: {repair.line()}")
    elif (run_dir / TUNER_FILE).exists():
        raise UserError(
            f"run folder '{run_dir}' already holds a sweep; pass --resume to continue it, "
            "or change `name` (or --set name=...)"
        )


@contextlib.contextmanager
def _storage_errors_are_user_errors() -> Iterator[None]:
    """The run folder's storage failing (e.g. a missing bucket) is one line, exit code 2."""
    try:
        yield
    except StorageError as err:
        raise UserError(str(err)) from None


def save_experiment(exp: Experiment) -> None:
    """``RUN/experiment.json``: the validated experiment file, so that later stages
    (``recommend RUN``) rebuild the same experiment from the run folder alone; in the file's
    own key order, which is the order of the factors in trial labels."""
    storage.write_json(
        exp.run_dir / EXPERIMENT_FILE,
        {"raw": {**exp.raw, "storage": str(exp.storage)}, "base_dir": str(exp.base_dir)},
        sort_keys=False,
    )


def load_saved_experiment(run_dir: str | Location) -> Experiment:
    """The experiment a sweep saved in its run folder (one line when there is none)."""
    import json

    from search.experiment import parse_experiment

    path = Location.parse(run_dir) / EXPERIMENT_FILE
    if not path.is_file():
        raise UserError(f"'{run_dir}' is not a microsweep run folder (no {EXPERIMENT_FILE})")
    saved = json.loads(path.read_bytes())
    return parse_experiment(saved["raw"], base_dir=Path(saved["base_dir"]))


def load_data(exp: Experiment) -> Any:
    """The task's dataset, checked before anything is launched (None without ``data:``)."""
    if exp.data is None:
        return None
    return exp.task.load_data(exp.data, train=exp.train)


def summarise(run_dir: Location, plan: Plan) -> SweepResult:
    """Counts by status and the best trial by the task's objective, from trials.parquet."""
    path = run_dir / R.TRIALS_FILE
    rows = path.read_table().to_pylist() if path.is_file() else []
    counts = Counter(r[R.STATUS] for r in rows)
    metric = plan.experiment.task.metric
    scored = [r for r in rows if r.get(metric) is not None and r[R.STATUS] != R.DIVERGED]
    sign = 1 if plan.experiment.task.mode == "max" else -1
    best = max(scored, key=lambda r: sign * r[metric]) if scored else None
    return SweepResult(run_dir, dict(counts), best, plan, rows)


def nothing_trained_line(result: SweepResult) -> str:
    """``no trial trained (4 infeasible): init imagenet for resnet18: ...; see RUN/trials...``."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "no trials"
    reasons = Counter(r.get(R.ERROR) for r in result.trials if r.get(R.ERROR))
    why = f": {reasons.most_common(1)[0][0]}" if reasons else ""
    return f"no trial trained ({counts}){why}; see {result.run_dir / R.TRIALS_FILE}"
