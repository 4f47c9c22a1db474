"""Run a sweep on Ray Tune: the one function behind ``microsweep sweep``.

Example::

    from search.experiment import load_experiment
    from search.sweep import run_sweep

    result = run_sweep(load_experiment("exp.yaml"))          # embedded local Ray
    result = run_sweep(exp, address="auto")                   # the cluster `ray start` made
    print(result.best)                                        # the best trial's row

Search settings (``TuneConfig``: search algorithm, ASHA/FIFO, concurrency) are built apart from
job settings (``RunConfig``: storage, failures, checkpoints, our results callback).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from analysis import results as R
from core import storage
from core.errors import StorageError, UserError
from core.storage import Location
from search.experiment import Experiment
from search.feasibility import Progress
from search.plan import Plan, base_config, make_plan
from search.repair import repair_snapshot
from search.resources import trial_resources
from search.results_writer import ResultsWriter
from search.resume import TUNER_FILE, check_resumable
from spaces.dimensions import Fixed

METRIC, MODE = "val_iou", "max"
METRICS = {"pretraining": "val_top1"}  # the objective per kind; default METRIC


def metric_for(kind: str) -> str:
    return METRICS.get(kind, METRIC)


@dataclass(frozen=True)
class SweepResult:
    run_dir: Location  # a local folder or a URI (core.storage)
    counts: dict[str, int]  # trials by status
    best: dict[str, Any] | None  # the best trial's row of trials.parquet
    plan: Plan
    trials: list[dict[str, Any]] = field(default_factory=list)


def run_sweep(
    experiment: Experiment,
    *,
    address: str | None = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> SweepResult:
    """Plan, check the data, launch (or resume) the Tuner, and summarise our results files.

    ``progress(done, total)`` follows the feasibility checks of the plan (see ``make_plan``).
    """
    exp = experiment
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # diverged: no val_iou
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    run_dir = exp.run_dir
    with _storage_errors_are_user_errors():
        if resume:
            for repair in repair_snapshot(check_resumable(run_dir), run_dir):
                print(f"microsweep: {repair.line()}", file=sys.stderr)
        elif (run_dir / TUNER_FILE).exists():
            raise UserError(
                f"run folder '{run_dir}' already holds a sweep; pass --resume to continue it, "
                "or change `name` (or --set name=...)"
            )
        run_dir.make_dir()  # a bucket typo or missing credentials: one line, before any work
        plan = make_plan(exp, progress=progress)
        data = load_data(exp)
        if exp.kind == "segmentation" and data is not None:
            write_truth_masks(data, run_dir)
        _init_ray(address)
        tuner = _restore_tuner(exp, plan, data, run_dir) if resume else _new_tuner(exp, plan, data)
        tuner.fit()
        return summarise(run_dir, plan)


@contextlib.contextmanager
def _storage_errors_are_user_errors() -> Iterator[None]:
    """The run folder's storage failing (e.g. a missing bucket) is one line, exit code 2."""
    try:
        yield
    except StorageError as err:
        raise UserError(str(err)) from None


def load_data(exp: Experiment) -> Any:
    """The dataset, checked fast before anything is launched (None for kinds without data)."""
    if exp.data is None:
        return None
    if exp.kind == "pretraining":
        from trainables import classify_data

        return classify_data.load_image_folder(exp.data)
    from trainables.data.dataset import load_dataset

    # load_dataset checks every file (DataError lists each problem) and decodes it once.
    crop = exp.train.get("crop")
    return load_dataset(exp.data, crop=crop if isinstance(crop, int) else None)


def write_truth_masks(data: Any, run_dir: Location) -> None:
    """Ground truth of the test splits as index PNGs (``RUN/truth/{split}/{image}.png``).

    Reports draw accuracy maps from these and the predictions in each trial's checkpoint,
    without decoding the dataset again (``analysis`` never imports ``trainables``).
    """
    import io

    from PIL import Image

    for split in data.test_splits:
        for name, mask in zip(data.splits[split].names, data.splits[split].masks, strict=True):
            path = run_dir / R.TRUTH_DIR / split / f"{name}.png"
            if not path.exists():
                buf = io.BytesIO()
                Image.fromarray(mask).save(buf, format="PNG")
                storage.write_bytes(path, buf.getvalue())


def _init_ray(address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True, configure_logging=False)
        return
    ray.init(
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        dashboard_host="127.0.0.1",
        log_to_driver=True,
        configure_logging=True,
        logging_level="warning",
    )


def _trainable(exp: Experiment, data: Any, plan: Plan) -> Any:
    import ray
    from ray import tune

    from search.trial import resolve_trainable, run_trial

    resolve_trainable(exp.kind)  # fail here, in one line, not in every trial
    gpus = ray.cluster_resources().get("GPU", 0) > 0
    # a string: trials on other nodes read our record from the same path or URI
    fn = tune.with_parameters(run_trial, data=data, kind=exp.kind, run_dir=str(exp.run_dir))
    return tune.with_resources(fn, trial_resources(exp.resources, gpus_available=gpus))


def param_space(exp: Experiment) -> dict[str, Any]:
    """Ray's search space: fixed values, and domains for lists and distributions."""
    space = {k: (d.value if isinstance(d, Fixed) else d.to_tune()) for k, d in exp.space.items()}
    space.update(base_config(exp))
    if exp.search.algorithm != "optuna":
        space["seed"] = exp.seeds[0]  # overridden by every point
    else:
        space["seed"] = exp.search.seed
    return space


def tune_config(exp: Experiment, plan: Plan) -> Any:
    """Search settings: algorithm, scheduler, sample count, concurrency."""
    from ray import tune

    return tune.TuneConfig(
        metric=metric_for(exp.kind),
        mode=MODE,
        scheduler=_scheduler(exp),
        search_alg=_search_alg(exp, plan),
        num_samples=plan.trials if exp.search.algorithm != "optuna" else exp.search.num_samples,
        max_concurrent_trials=exp.search.max_concurrent,
        trial_name_creator=trial_label,
        trial_dirname_creator=trial_label,
    )


def trial_label(trial: Any) -> str:
    """``Unet-resnet18-none-s0_3f2a1_00004``: readable and unique (Ray's trial id)."""
    cfg = trial.config
    parts = [str(cfg[k]) for k in ("decoder", "encoder", "init") if k in cfg]
    parts.append(f"s{cfg.get('seed', 0)}")
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join(parts)).strip("_")
    return f"{safe}_{trial.trial_id}"


def _scheduler(exp: Experiment) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    sched = exp.scheduler
    if sched.name == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr="training_iteration",
        max_t=sched.max_epochs,
        grace_period=sched.grace_epochs,
        reduction_factor=sched.reduction_factor,
    )


def _search_alg(exp: Experiment, plan: Plan) -> Any:
    if exp.search.algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        sampler = optuna.samplers.TPESampler(seed=exp.search.seed)
        return OptunaSearch(sampler=sampler, metric=metric_for(exp.kind), mode=MODE)
    from ray.tune.search import BasicVariantGenerator

    # The points are already shuffled with the search seed (see search.plan).
    return BasicVariantGenerator(
        points_to_evaluate=[dict(p) for p in plan.points], random_state=exp.search.seed
    )


def run_config(exp: Experiment, plan: Plan, resources: Any, data: Any) -> Any:
    """Job settings: where, how failures and checkpoints are handled, our results callback."""
    from ray import tune

    writer = ResultsWriter(
        run_dir=str(exp.run_dir),
        run_info=run_info(exp, plan, data),
        factors=list(exp.space),
        infeasible=list(plan.infeasible),
        resources=resources,
        keep=exp.fault.keep,  # issue 12: what an ended trial keeps (search/pruning.py)
    )
    return tune.RunConfig(
        name=exp.name,
        storage_path=str(exp.storage),  # Ray resolves URIs with pyarrow.fs as we do
        failure_config=tune.FailureConfig(max_failures=exp.fault.max_failures),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=exp.fault.checkpoints_to_keep,
            checkpoint_score_attribute=metric_for(exp.kind),
            checkpoint_score_order=MODE,
        ),
        callbacks=[writer],
        verbose=1,
    )


def run_info(exp: Experiment, plan: Plan, data: Any) -> dict[str, Any]:
    import datetime

    return {
        "schema": R.SCHEMA_VERSION,
        "experiment": exp.name,
        "dataset": getattr(data, "label", None),
        "kind": exp.kind,
        "factors": list(exp.space),
        "test_splits": list(getattr(data, "test_splits", [])),
        "classes": list(getattr(data, "classes", [])),
        "metric": metric_for(exp.kind),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        R.RUNGS: plan.rungs,
        R.SEEDS: exp.seeds,
        "search": exp.search.algorithm,
        "scheduler": exp.scheduler.name,
    }


def _new_tuner(exp: Experiment, plan: Plan, data: Any) -> Any:
    from ray import tune

    trainable = _trainable(exp, data, plan)
    resources = trial_resources(exp.resources, gpus_available=_has_gpus())
    return tune.Tuner(
        trainable,
        param_space=param_space(exp),
        tune_config=tune_config(exp, plan),
        run_config=run_config(exp, plan, resources, data),
    )


def _restore_tuner(exp: Experiment, plan: Plan, data: Any, run_dir: Location) -> Any:
    from ray import tune

    return tune.Tuner.restore(
        str(run_dir),
        trainable=_trainable(exp, data, plan),
        resume_unfinished=True,
        resume_errored=True,
        restart_errored=False,
    )


def _has_gpus() -> bool:
    import ray

    return ray.cluster_resources().get("GPU", 0) > 0


def summarise(run_dir: Location, plan: Plan) -> SweepResult:
    """Counts by status and the best trial, from our own trials.parquet."""
    path = run_dir / R.TRIALS_FILE
    rows = path.read_table().to_pylist() if path.is_file() else []
    counts = Counter(r[R.STATUS] for r in rows)
    scored = [r for r in rows if r.get(R.VAL_IOU) is not None and r[R.STATUS] != R.DIVERGED]
    best = max(scored, key=lambda r: r[R.VAL_IOU]) if scored else None
    return SweepResult(run_dir, dict(counts), best, plan, rows)
