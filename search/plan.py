"""Planning a sweep before launch: expand the space, drop what cannot run, count the work.

Example::

    plan = make_plan(load_experiment("exp.yaml"))
    print(format_plan(plan))

Grid search: every combination of the list dimensions, ``search.num_samples`` seeded draws of
the distributions per combination, times ``repeats`` seeds; shuffled with ``search.seed``
because Ray's asynchronous ASHA depends on the order trials reach a rung. Random search: lists are
drawn like ``choice``; ``num_samples`` configurations times ``repeats``. Optuna samples while
running, so only the count (``num_samples``) is known.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from analysis import results as R
from search.experiment import Experiment
from search.feasibility import (
    DEFAULTS,
    Checker,
    Progress,
    check_pairs,
    checker_for,
    segmentation_reason,
)
from spaces.dimensions import Distribution, Fixed, Grid, sample


@dataclass(frozen=True)
class Plan:
    experiment: Experiment
    points: tuple[dict[str, Any], ...]  # trial configs to run (grid/random), in launch order
    infeasible: tuple[tuple[dict[str, Any], str], ...]  # (trial config, reason), never trained
    reasons: tuple[tuple[str, int], ...]  # each reason once, with how many points it dropped
    trials: int  # trials to launch
    fifo_epochs: int  # trial-epochs if every trial runs to max_epochs
    asha_epochs: int  # trial-epochs if each ASHA rung keeps exactly the top 1/eta
    estimate_s: float | None  # wall time estimate from a previous run's epochs.parquet
    slots: int  # trials at once used for the estimate

    @property
    def rungs(self) -> list[int]:
        return self.experiment.scheduler.rungs()


def base_config(exp: Experiment) -> dict[str, Any]:
    """What every trial gets besides its point: the ``train`` block and ``max_epochs``."""
    return {**exp.train, "max_epochs": exp.scheduler.max_epochs}


def expand_points(exp: Experiment) -> list[dict[str, Any]]:
    """All trial configs of a grid/random search, shuffled with the search seed."""
    rng = np.random.default_rng(exp.search.seed)
    fixed = {k: d.value for k, d in exp.space.items() if isinstance(d, Fixed)}
    if exp.search.algorithm == "grid":
        grid = {k: d.values for k, d in exp.space.items() if isinstance(d, Grid)}
        drawn = [k for k, d in exp.space.items() if isinstance(d, Distribution)]
        combos = [
            dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())
        ]
        count = exp.search.num_samples
    else:
        drawn = [k for k, d in exp.space.items() if not isinstance(d, Fixed)]
        combos, count = [{}], exp.search.num_samples
    configs = []
    for combo in combos:
        draws = {k: sample(exp.space[k], count, rng) for k in drawn}  # type: ignore[arg-type]
        for i in range(count):
            configs.append({**fixed, **combo, **{k: v[i] for k, v in draws.items()}})
    base = base_config(exp)
    points = [{**base, **c, "seed": s} for c in configs for s in exp.seeds]
    random.Random(exp.search.seed).shuffle(points)
    return points


def make_plan(
    exp: Experiment,
    *,
    checker: Checker | None = None,
    slots: int | None = None,
    progress: Progress | None = None,
) -> Plan:
    """Expand, check feasibility, count; ``checker`` defaults to the trainables' own checks.

    ``progress(done, total)`` follows the encoder/decoder pairs that smp has to build (those
    not in the feasibility cache).
    """
    check = checker or checker_for(exp.kind)
    points, infeasible = [], []
    if exp.search.algorithm == "optuna":
        trials = exp.search.num_samples
    else:
        expanded = expand_points(exp)
        if check is segmentation_reason:
            check_pairs(_pairs(expanded), progress=progress)
        for point in expanded:
            reason = check(point)
            (infeasible.append((point, reason)) if reason else points.append(point))
        trials = len(points)
    slots = slots or _default_slots(exp)
    fifo = trials * exp.scheduler.max_epochs
    asha = asha_trial_epochs(trials, exp) if exp.scheduler.name == "asha" else fifo
    return Plan(
        experiment=exp,
        points=tuple(points),
        infeasible=tuple(infeasible),
        reasons=tuple(sorted(Counter(r for _, r in infeasible).items())),
        trials=trials,
        fifo_epochs=fifo,
        asha_epochs=asha,
        estimate_s=_estimate(exp, asha, slots),
        slots=slots,
    )


def _pairs(points: list[dict[str, Any]]) -> list[tuple[str, str]]:
    get = [{**DEFAULTS, **p}.get for p in points if any(k in p for k in DEFAULTS)]
    return [(g("decoder"), g("encoder")) for g in get]


def asha_trial_epochs(trials: int, exp: Experiment) -> int:
    """Trial-epochs when rung i keeps ceil(n / eta**i) trials (synchronous halving)."""
    sched = exp.scheduler
    bounds = [*sched.rungs(), sched.max_epochs]
    total, prev = 0, 0
    for i, bound in enumerate(bounds):
        alive = math.ceil(trials / sched.reduction_factor**i) if trials else 0
        total += alive * (bound - prev)
        prev = bound
    return total


def _default_slots(exp: Experiment) -> int:
    import os

    return max(1, int((os.cpu_count() or 1) // exp.resources.cpu))


def _estimate(exp: Experiment, trial_epochs: int, slots: int) -> float | None:
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
    return float(per_epoch.median()) * trial_epochs / max(1, slots)


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
    lines += [
        f"trials: {plan.trials}"
        + (f" (+{len(plan.infeasible)} infeasible)" if plan.infeasible else ""),
        f"resources per trial: cpu {res.cpu:g}, gpu {res.gpu}",
        f"scheduler: {exp.scheduler.name}, max_epochs {exp.scheduler.max_epochs}"
        + (f", rungs at epochs {plan.rungs}" if plan.rungs else ""),
        f"trial-epochs: FIFO {plan.fifo_epochs}, ASHA {plan.asha_epochs}"
        + (
            " (if each rung keeps the top 1/eta; asynchronous ASHA may run more)"
            if plan.rungs
            else ""
        ),
    ]
    if plan.estimate_s is not None:
        lines.append(
            f"estimate: ~{plan.estimate_s / 3600:.2f} h with {plan.slots} trial(s) at once "
            f"(from {exp.run_dir / R.EPOCHS_FILE})"
        )
    else:
        lines.append("estimate: none (no previous run of this experiment)")
    from search.footprint import estimate_footprint  # issue 12: the storage a sweep needs

    lines += [fp.line()] if (fp := estimate_footprint(plan)) else []
    return "\n".join(lines)
