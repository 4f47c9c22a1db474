"""The storage a sweep will need, estimated before launch (``microsweep sweep --dry-run``).

A trial's training state (``state.pt``) is fp32 weights and Adam's two moments: 3 copies of the
parameters, 4 bytes each. The best weights, when they are not the current ones, are stored once
per trial beside its checkpoints (``best/``, :mod:`trainables.best_store`): one more copy per
running trial (two, briefly, when a newer best replaces one). Parameter counts come from the
models built on the meta device (nothing is allocated or downloaded, as
:func:`search.resources.encoder_parameters`).

- **peak**: ``concurrency`` of the largest trials, each with ``checkpoints_to_keep`` states,
  the latest (Ray keeps it besides the best-scored ones) and the one being written (Ray deletes
  the oldest after the new one registered) and its best weights, on top of what the ended
  trials keep;
- **final** (``fault.keep``): ``best``: per trial that completes (:func:`completing_trials`)
  its best weights (``model.safetensors``) and predicted masks (estimated by the size of the
  dataset's test masks); ``last``: one state and the best weights per trial; ``all``:
  ``checkpoints_to_keep`` + 1 states and the best weights per trial (Ray keeps the latest
  checkpoint besides the best ones), an upper bound for trials that stop before that many
  epochs.

Ray's own small files (``result.json``, its state snapshots) are not counted. Example::

    print(estimate_footprint(make_plan(exp)).line())
    # storage: peak ~1.55 GB (2 trial(s) at once x 3 state(s) of 229 MB),
    #          final ~243 MB (fault.keep: best)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search.plan import Plan, base_config
from trainables.data.layout import SPLIT_ORDER

BYTES_PER_VALUE = 4  # fp32 weights and optimiser moments
STATE_COPIES = 3  # model + Adam's exp_avg and exp_avg_sq (the best weights: once per trial)
DEFAULT_CLASSES = 3


@dataclass(frozen=True)
class Footprint:
    """Bytes a sweep needs: the largest trial's state, at the peak and after the sweep."""

    state_bytes: int
    peak_bytes: int
    final_bytes: int
    concurrency: int
    states_per_trial: int  # at the peak
    keep: str

    def line(self) -> str:
        return (
            f"storage: peak ~{_size(self.peak_bytes)} ({self.concurrency} trial(s) at once x "
            f"{self.states_per_trial} state(s) of {_size(self.state_bytes)}), "
            f"final ~{_size(self.final_bytes)} (fault.keep: {self.keep})"
        )


@functools.lru_cache(maxsize=256)
def model_parameters(decoder: str, encoder: str, num_classes: int) -> int:
    """Parameter count of smp's ``decoder`` on ``encoder``, built on the meta device."""
    import segmentation_models_pytorch as smp
    import torch

    with torch.device("meta"):
        model = smp.create_model(decoder, encoder_name=encoder, encoder_weights=None,
                                 classes=num_classes)  # fmt: skip
    return sum(p.numel() for p in model.parameters())


def estimate_footprint(plan: Plan) -> Footprint | None:
    """The sweep's storage estimate; None when the trials' models are not known (custom kinds,
    Optuna, which samples while running)."""
    exp = plan.experiment
    if not {"encoder", "decoder"} <= set(exp.task.config_keys() or ()) or not plan.points:
        return None  # the task's trials build no smp model we could count
    classes = len(getattr(getattr(exp.data, "classes", None), "classes", ())) or DEFAULT_CLASSES
    params = sorted((_parameters(p, exp, classes) for p in plan.points), reverse=True)
    state = [STATE_COPIES * BYTES_PER_VALUE * n for n in params]
    best = [BYTES_PER_VALUE * n for n in params]
    fault = exp.fault
    share = completing_trials(plan) / len(params)  # only they have weights and predictions
    per_trial_final = {
        "best": [int(share * (b + predicted_mask_bytes(exp.data))) for b in best],
        "last": [s + b for s, b in zip(state, best, strict=True)],
        "all": [(fault.checkpoints_to_keep + 1) * s + b for s, b in zip(state, best, strict=True)],
    }[fault.keep]
    concurrency = min(plan.slots, len(params))
    # the best-scored ones, the latest (Ray keeps it besides them) and the one being written
    states = fault.checkpoints_to_keep + 2
    running = states * sum(state[:concurrency]) + sum(best[:concurrency])
    final = sum(per_trial_final)
    peak = max(final, running + sum(per_trial_final[concurrency:]))
    return Footprint(state[0], peak, final, concurrency, states, fault.keep)


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


def _parameters(point: dict[str, Any], exp: Any, classes: int) -> int:
    config = {**base_config(exp), **point}
    return model_parameters(
        str(config.get("decoder", "Unet")), str(config.get("encoder", "resnet18")), classes
    )


@functools.lru_cache(maxsize=16)
def _mask_bytes(root: Path, split_file: Path | None) -> int:
    from trainables.data.layout import discover

    layout = discover(root, split_file)
    tests = [s for s in layout.splits if s not in SPLIT_ORDER[:2]]  # what is not train or val
    return sum(p.mask.stat().st_size for s in tests for p in layout.splits[s])


def predicted_mask_bytes(data: Any) -> int:
    """Bytes of the dataset's test masks: the size of one trial's predicted masks (PNG)."""
    if data is None or not hasattr(data, "root"):
        return 0
    try:
        return _mask_bytes(Path(data.root), getattr(data, "split_file", None))
    except Exception:  # an estimate never stops a dry run; the data check reports problems
        return 0


def _size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"
