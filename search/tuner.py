"""Ray Tune's Tuner for an experiment: search settings (``TuneConfig``) kept apart from job
settings (``RunConfig``); the strategy, scheduler and task come from their registries."""

from __future__ import annotations

import datetime
import re
from typing import Any

from analysis import results as R
from analysis.status import PLANNED_EPOCHS, PLANNED_TRIALS
from core.storage import Location
from search.console import ray_verbosity
from search.experiment import Experiment, base_config
from search.plan import Plan
from search.resources import trial_resources
from search.results_writer import ResultsWriter
from search.stopping import ends_quietly
from search.storage_guard import StorageGuard
from search.strategies import get_scheduler, get_searcher
from search.tune_space import to_tune


def param_space(exp: Experiment) -> dict[str, Any]:
    """Ray's search space: fixed values, and domains for lists and distributions."""
    space = {k: to_tune(d) for k, d in exp.space.items()}
    space.update(base_config(exp))
    space["seed"] = get_searcher(exp.search.algorithm).seed_value(exp)  # points override it
    return space


def tune_config(exp: Experiment, plan: Plan) -> Any:
    """Search settings: algorithm, scheduler, sample count, concurrency."""
    from ray import tune

    task, searcher = exp.task, get_searcher(exp.search.algorithm)
    points = list(plan.points)
    return tune.TuneConfig(
        metric=task.metric,
        mode=task.mode,
        scheduler=get_scheduler(exp.scheduler.name).ray_scheduler(
            exp.scheduler, metric=task.metric, mode=task.mode
        ),
        search_alg=searcher.ray_searcher(exp, points, metric=task.metric, mode=task.mode),
        num_samples=searcher.num_samples(exp, points),
        max_concurrent_trials=None if searcher.limits_concurrency else exp.search.max_concurrent,
        reuse_actors=task.reuse_actors,  # replay: no process start per trial
        trial_name_creator=trial_label,
        trial_dirname_creator=trial_label,
    )


def trial_label(trial: Any) -> str:
    """``Unet-resnet18-none-s0_3f2a1_00004``: readable and unique (Ray's trial id). A templated
    init names the trial's own entry: ``zoo:mn-{encoder}`` -> ``...-zoo_mn-resnet18-...``."""
    from trainables.inits import expand_init

    cfg = dict(trial.config)
    if isinstance(cfg.get("init"), str) and "encoder" in cfg:
        cfg["init"] = expand_init(cfg["init"], str(cfg["encoder"]))
    parts = [str(cfg[k]) for k in ("decoder", "encoder", "init") if k in cfg]
    parts.append(f"s{cfg.get('seed', 0)}")
    safe = re.sub(r"[^A-Za-z0-9._+-]+", "_", "-".join(parts)).strip("_")
    return f"{safe}_{trial.trial_id}"


def run_config(
    exp: Experiment, plan: Plan, data: Any, *, resources: Any, callbacks: list[Any]
) -> Any:
    """Job settings: where, how failures and checkpoints are handled, our callbacks."""
    from ray import tune

    writer = ResultsWriter(
        run_dir=str(exp.run_dir),
        run_info=run_info(exp, plan, data),
        factors=list(exp.space),
        infeasible=list(plan.infeasible),
        resources=resources,
        task=exp.task,
        stage=exp.stage,
        fold=exp.fold,  # recommend --folds: the `fold` column
        keep=exp.fault.keep,  # what an ended trial keeps (search/pruning.py)
        write_each_end=exp.task.write_each_end,
    )
    # Ray's folder is exp.ray_dir: the run folder (search), or RUN/<stage> after it
    storage, name = (exp.storage, exp.name) if exp.stage == R.SEARCH else (exp.run_dir, exp.stage)
    if exp.fold is not None:  # RUN/confirm/foldN
        storage, name = exp.run_dir / exp.stage, f"fold{exp.fold}"
    return tune.RunConfig(
        name=name,
        storage_path=str(storage),  # Ray resolves URIs with pyarrow.fs as we do
        failure_config=tune.FailureConfig(max_failures=exp.fault.max_failures),
        checkpoint_config=tune.CheckpointConfig(
            num_to_keep=exp.fault.checkpoints_to_keep,
            checkpoint_score_attribute=exp.task.metric,
            checkpoint_score_order=exp.task.mode,
        ),
        callbacks=[StorageGuard(str(exp.run_dir)), writer, *callbacks],  # guard first
        verbose=ray_verbosity(),  # Ray's tables only with -v (search.console)
    )


def run_info(exp: Experiment, plan: Plan, data: Any) -> dict[str, Any]:
    """``run.json``: what the run is, for reports and later stages (analysis.results)."""
    info = exp.task.data_info(data, spec=exp.data) if data is not None else {"dataset": None}
    return {
        "schema": R.SCHEMA_VERSION,
        "experiment": exp.name,
        "kind": exp.kind,
        "factors": list(exp.space),
        "classes": [],
        "test_splits": [],
        **info,
        "metric": exp.task.metric,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        R.RUNGS: plan.rungs,
        R.SEEDS: exp.seeds,
        "search": exp.search.algorithm,
        "scheduler": exp.scheduler.name,
        PLANNED_TRIALS: plan.trials,  # `microsweep status` counts pending trials
        PLANNED_EPOCHS: plan.asha_epochs,  # and its ETA from the plan's trial-epochs
    }


def _trainable(exp: Experiment, data: Any) -> Any:
    from ray import tune

    from search.trial import run_trial

    # run_dir as a string: trials on other nodes read our record from the same path or URI
    fn = tune.with_parameters(run_trial, data=data, kind=exp.kind, run_dir=str(exp.run_dir))
    fn = ends_quietly(fn)  # a trial ASHA stops ends without abort dumps (search.stopping)
    workers = exp.resources.workers_per_trial
    return exp.task.tuner_trainable(fn, resources=_resources(exp), workers=workers)


def _resources(exp: Experiment) -> Any:
    import ray

    gpus = ray.cluster_resources().get("GPU", 0) > 0
    return trial_resources(exp.resources, gpus_available=gpus)


def new_tuner(exp: Experiment, plan: Plan, data: Any, *, callbacks: list[Any]) -> Any:
    from ray import tune

    return tune.Tuner(
        _trainable(exp, data),
        param_space=param_space(exp),
        tune_config=tune_config(exp, plan),
        run_config=run_config(exp, plan, data, resources=_resources(exp), callbacks=callbacks),
    )


def restore_tuner(exp: Experiment, plan: Plan, data: Any, *, callbacks: list[Any]) -> Any:
    """Ray's saved Tuner of ``exp.run_dir`` (callbacks are Ray's saved ones: ours are pickled
    into tuner.pkl with the results writer; see search.resume for the checks done before)."""
    from ray import tune

    return tune.Tuner.restore(
        str(Location.parse(exp.ray_dir)),
        trainable=_trainable(exp, data),
        resume_unfinished=True,
        resume_errored=True,
        restart_errored=False,
    )
