"""Planning a sweep before launch: expand the space, check every trial config, drop what cannot
run, count the work.

Example::

    plan = make_plan(load_experiment("exp.yaml"))
    print(format_plan(plan))

The search strategy (:mod:`search.strategies`) expands the trial configs (grid, random) or only
counts them (optuna, which samples while running). Every expanded config is then built as the
task's typed config, so a bad value fails here, in one line naming the key as the experiment
file spells it, before anything is launched; for optuna the bounds and choices of every
dimension are built instead. The task's feasibility check moves points it cannot train into
``infeasible``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from analysis import results as R
from core.errors import ConfigError, UserError
from search.experiment import Experiment, base_config
from search.strategies import get_scheduler, get_searcher
from search.weights import WeightStatus, format_weights, plan_weights
from spaces.dimensions import Distribution, Fixed, Grid
from trainables.task import Progress


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    points: tuple[dict[str, Any], ...]  # trial configs to run (grid/random), in launch order
    infeasible: tuple[tuple[dict[str, Any], str], ...]  # (trial config, reason), never trained
    reasons: tuple[tuple[str, int], ...]  # each reason once, with how many points it dropped
    trials: int  # trials to launch
    fifo_epochs: int  # trial-epochs if every trial runs to max_epochs
    asha_epochs: int  # trial-epochs the scheduler is expected to run
    estimate_s: float | None  # wall time estimate from a previous run's epochs.parquet
    slots: int  # CPU slots (the machine's or cluster's CPUs over resources.cpu)
    weights: tuple[WeightStatus, ...] = ()  # issue 13: where each (init, encoder) comes from

    @property
    def rungs(self) -> list[int]:
        return self.experiment.scheduler.rungs()

    @property
    def at_once(self) -> int:
        """Trials that run at once: the estimate's and the storage peak's concurrency."""
        return trials_at_once(self.experiment, self.slots, self.trials)


def trials_at_once(exp: Experiment, slots: int, trials: int) -> int:
    """``slots`` over ``resources.workers_per_trial``, at most ``search.max_concurrent`` and
    the number of trials (at least 1)."""
    limit = exp.search.max_concurrent or trials
    return max(1, min(slots // exp.resources.workers_per_trial, limit, trials))


def make_plan(
    exp: Experiment,
    *,
    slots: int | None = None,
    progress: Progress | None = None,
    feasibility: bool = True,
    offline: bool | None = None,
) -> Plan:
    """Expand, check every trial config, check feasibility (unless ``feasibility=False``),
    count.

    ``progress(done, total)`` follows the task's batch checks (smp building encoder/decoder
    pairs that are not in the feasibility cache). Offline (``offline``, or see
    search.weights), trials whose weights would be downloaded make it refuse in one line.
    """
    task, searcher = exp.task, get_searcher(exp.search.algorithm)
    expanded = searcher.points(exp)
    check_trial_configs(exp, expanded if searcher.expands else bound_configs(exp))
    if feasibility:
        task.precheck(expanded, progress)
    points, infeasible = [], []
    for point in expanded:
        reason = task.check(point) if feasibility else None
        (infeasible.append((point, reason)) if reason else points.append(point))
    trials = searcher.num_samples(exp, points)
    weights = plan_weights(exp, points, offline=offline)  # refuses offline gaps
    slots = slots or _default_slots(exp)
    fifo = trials * exp.scheduler.max_epochs
    expected = get_scheduler(exp.scheduler.name).trial_epochs(trials, exp.scheduler)
    return Plan(
        experiment=exp,
        points=tuple(points),
        infeasible=tuple(infeasible),
        reasons=tuple(sorted(Counter(r for _, r in infeasible).items())),
        trials=trials,
        fifo_epochs=fifo,
        asha_epochs=expected,
        estimate_s=_estimate(exp, expected, trials_at_once(exp, slots, trials)),
        slots=slots,
        weights=weights,
    )


def check_trial_configs(exp: Experiment, configs: list[dict[str, Any]]) -> None:
    """Build the task's typed config of each; the first bad value is one UserError line."""
    seen: set[str] = set()
    for config in configs:
        key = repr(sorted(config.items()))
        if key in seen:
            continue
        seen.add(key)
        try:
            exp.task.build_config(config)
        except ConfigError as err:
            raise err.located(where_set(exp, err.key)) from None
        except UserError as err:
            raise UserError(f"experiment '{exp.name}': {err}") from None


def where_set(exp: Experiment, key: str) -> str:
    """The experiment-file key a trial config key comes from (``space.lr``, ``train.crop``)."""
    if key in exp.space:
        return f"space.{key}"
    if key in exp.train:
        return f"train.{key}"
    return {"max_epochs": "scheduler.max_epochs", "seed": "search.seed"}.get(key, key)


def bound_configs(exp: Experiment) -> list[dict[str, Any]]:
    """Configs that together hold every dimension's bounds and choices (for optuna)."""
    first = {k: _values(d)[0] for k, d in exp.space.items()}
    base = {**base_config(exp), **first, "seed": exp.search.seed}
    configs = [base]
    for key, dim in exp.space.items():
        configs += [{**base, key: value} for value in _values(dim)[1:]]
    return configs


def _values(dim: Fixed | Grid | Distribution) -> list[Any]:
    if isinstance(dim, Fixed):
        return [dim.value]
    if isinstance(dim, Grid):
        return list(dim.values)
    if dim.name in ("choice",):
        return list(dim.args)
    if dim.name == "randn":
        return [dim.args[0]]
    return list(dim.args[:2])  # low and high


def _default_slots(exp: Experiment) -> int:
    import os

    return max(1, int((os.cpu_count() or 1) // exp.resources.cpu))


def _estimate(exp: Experiment, trial_epochs: int, at_once: int) -> float | None:
    """Seconds: trial-epochs x median seconds per epoch of the previous run / trials at once."""
    path = exp.run_dir / R.EPOCHS_FILE  # a local path or a URI (core.storage)
    try:
        if not path.is_file():
            return None
        table = path.read_table(columns=[R.TRIAL, R.EPOCH, R.WALL_S]).to_pandas()
    except Exception:  # an unreachable storage or unreadable old file only costs the estimate
        return None
    last = table.sort_values(R.EPOCH).groupby(R.TRIAL).last()
    per_epoch = (last[R.WALL_S] / last[R.EPOCH]).dropna()
    if per_epoch.empty:
        return None
    return float(per_epoch.median()) * trial_epochs / at_once


def format_plan(plan: Plan) -> str:
    """The dry-run summary printed by ``microsweep sweep FILE --dry-run``."""
    exp = plan.experiment
    res = exp.resources
    varied = {k: d for k, d in exp.space.items() if not isinstance(d, Fixed)}
    lines = [
        f"experiment {exp.name} ({exp.kind}), run folder {exp.run_dir}",
        f"space: {len(exp.space)} keys, varied: {', '.join(varied) or 'none'}",
        f"search: {exp.search.algorithm}, seed {exp.search.seed}; repeats {exp.repeats} "
        f"(seeds {exp.seeds})",
    ]
    for reason, count in plan.reasons:
        lines.append(f"skipped {count} point(s): {reason}")
    lines += format_weights(plan.weights)  # issue 13
    lines += [
        f"trials: {plan.trials}"
        + (f" (+{len(plan.infeasible)} infeasible)" if plan.infeasible else ""),
        f"resources per trial: cpu {res.cpu:g}, gpu {res.gpu}",
        f"scheduler: {exp.scheduler.name}, max_epochs {exp.scheduler.max_epochs}"
        + (f", rungs at epochs {plan.rungs}" if plan.rungs else ""),
        f"trial-epochs: FIFO {plan.fifo_epochs}, {exp.scheduler.name.upper()} {plan.asha_epochs}"
        + (
            " (if each rung keeps the top 1/eta; asynchronous ASHA may run more)"
            if plan.rungs
            else ""
        ),
    ]
    if plan.estimate_s is not None:
        lines.append(
            f"estimate: ~{plan.estimate_s / 3600:.2f} h with {plan.at_once} trial(s) at once "
            f"(from {exp.run_dir / R.EPOCHS_FILE})"
        )
    else:
        lines.append("estimate: none (no previous run of this experiment)")
    from search.footprint import estimate_footprint  # the storage a sweep needs

    lines += [fp.line()] if (fp := estimate_footprint(plan)) else []

    from search.simulate import plan_quote  # a simulation of the last run

    lines += [q for q in [plan_quote(exp)] if q]
    if not plan.trials:
        lines.append("nothing to train: every planned trial is infeasible (reasons above)")
    return "\n".join(lines)
