"""The storage a sweep will need, estimated before launch (``microsweep sweep --dry-run``).

One estimator for every task: the task tells what one trial writes
(:meth:`trainables.task.Task.trial_storage`), this module sums it over the sweep. A
segmentation trial's ``state.pt`` is fp32 weights and Adam's two moments (3 copies of the
parameters, 4 bytes each); a pretraining trial's is the classifier's weights and SGD's momentum
(2 copies). The best weights, when they are not the current ones, are stored once per trial
beside its checkpoints (``best/``, :mod:`trainables.best_store`): one more copy per running
trial (two, briefly, when a newer best replaces one). A data-parallel pretraining trial
(``resources.workers_per_trial`` > 1) also holds Ray Train's one checkpoint in ``train/`` and
the best file before the newest. Parameter counts come from the models built on the meta
device (nothing is allocated or downloaded, as :func:`search.resources.encoder_parameters`).

- **peak**: ``concurrency`` of the largest trials (:attr:`search.plan.Plan.at_once`: the
  CPUs over ``resources.cpu`` x ``workers_per_trial``, at most ``search.max_concurrent``),
  each with ``checkpoints_to_keep`` states, the latest (Ray keeps it besides the best-scored
  ones) and the one being written (Ray deletes the oldest after the new one registered) and
  its best weights, on top of what the ended trials keep;
- **final** (``fault.keep``): ``best``: per trial that completes (:func:`completing_trials`)
  what the task keeps (segmentation: the best weights, ``model.safetensors.zst``, counted
  uncompressed: 7-8 % more than zstd leaves of trained weights; and the predicted masks,
  estimated by the size of the dataset's test masks; pretraining: nothing sizeable when the
  trial exported to the zoo, which lies outside the run folder, else
  ``model.safetensors.zst``); ``last``: that, and one state and the best weights per trial;
  ``all``: that, and ``checkpoints_to_keep`` + 1 states and the best weights per trial (Ray
  keeps the latest checkpoint besides the best ones), an upper bound for trials that stop
  before that many epochs.

Ray's own small files (``result.json``, its state snapshots) are not counted. Example::

    print(estimate_footprint(make_plan(exp)).line())
    # storage: peak ~1.55 GB (2 trial(s) at once x 3 state(s) of 229 MB),
    #          final ~243 MB (fault.keep: best)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from search.plan import Plan, base_config
from trainables.data.layout import held_out_mask_bytes as predicted_mask_bytes
from trainables.models import model_parameters
from trainables.task import TrialStorage

# model_parameters and predicted_mask_bytes: imported from here by earlier callers
__all__ = ["Footprint", "estimate_footprint", "model_parameters", "predicted_mask_bytes"]


@dataclass(frozen=True)
class Footprint:
    """Bytes a sweep needs: the largest trial's state, at the peak and after the sweep."""

    state_bytes: int
    peak_bytes: int
    final_bytes: int
    concurrency: int
    states_per_trial: int  # at the peak
    keep: str
    outside_bytes: int = 0  # written outside the run folder (pretraining's zoo entries)

    def line(self) -> str:
        outside = f"; zoo entries ~{_size(self.outside_bytes)}" if self.outside_bytes else ""
        return (
            f"storage: peak ~{_size(self.peak_bytes)} ({self.concurrency} trial(s) at once x "
            f"{self.states_per_trial} state(s) of {_size(self.state_bytes)}), "
            f"final {'~' if self.keep == 'best' else 'at most '}{_size(self.final_bytes)} "
            f"(fault.keep: {self.keep}{outside})"
        )


def estimate_footprint(plan: Plan) -> Footprint | None:
    """The sweep's storage estimate; None when what its trials write is not known (custom
    kinds; Optuna, which samples while running)."""
    exp = plan.experiment
    if not plan.points:
        return None
    workers = exp.resources.workers_per_trial
    trials = [_trial_storage(p, exp, workers) for p in plan.points]
    if any(t is None for t in trials):
        return None  # the task's trials build no model we could count
    trials.sort(key=lambda t: t.state + t.best + t.running_extra, reverse=True)
    fault = exp.fault
    share = completing_trials(plan) / len(trials)  # only they keep weights and predictions
    per_trial_final = [  # a completed trial's final checkpoint also holds what `best` keeps
        int(share * t.kept)
        + {
            "best": 0,
            "last": t.state + t.best,
            "all": (fault.checkpoints_to_keep + 1) * t.state + t.best + t.running_extra,
        }[fault.keep]
        for t in trials
    ]
    concurrency = min(plan.at_once, len(trials))
    # the best-scored ones, the latest (Ray keeps it besides them) and the one being written
    states = fault.checkpoints_to_keep + 2
    running = sum(states * t.state + t.best + t.running_extra for t in trials[:concurrency])
    final = sum(per_trial_final)
    peak = max(final, running + sum(per_trial_final[concurrency:]))
    outside = int(share * sum(t.outside for t in trials))
    return Footprint(trials[0].state, peak, final, concurrency, states, fault.keep, outside)


def completing_trials(plan: Plan) -> float:
    """Trials expected to reach their final evaluation: all under FIFO; under Ray's
    asynchronous ASHA, the expected survivors of every rung (:func:`asha_survivors`)."""
    sched = plan.experiment.scheduler
    survivors = float(plan.trials)
    for _ in plan.rungs:  # none under FIFO
        survivors = asha_survivors(survivors, sched.reduction_factor)
    return survivors


def asha_survivors(arrivals: float, eta: int) -> float:
    """Expected trials that asynchronous ASHA lets through a rung that ``arrivals`` reach in
    random order of quality. Ray continues the i-th arrival when its value is at least the
    (1 - 1/eta) percentile of the i - 1 recorded before it (the first always continues): with
    a random rank that is (i - 1 - floor((1 - 1/eta)(i - 2))) / i of the cases."""

    def chance(i: int) -> float:
        return 1.0 if i == 1 else (i - 1 - math.floor((1 - 1 / eta) * (i - 2))) / i

    whole = int(arrivals)
    expected = sum(chance(i) for i in range(1, whole + 1))
    return expected + (arrivals - whole) * chance(whole + 1)


def _trial_storage(point: dict[str, Any], exp: Any, workers: int) -> TrialStorage | None:
    return exp.task.trial_storage({**base_config(exp), **point}, data=exp.data, workers=workers)


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
