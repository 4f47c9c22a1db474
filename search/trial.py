"""The function Ray runs for each trial: skip it if our record has it finished, check its
config with the task's feasibility check, then run the task's trainable.

A configuration that cannot be built reports ``infeasible=True`` with its reason and returns,
without training (sampled points under Optuna reach here unchecked).
"""

from __future__ import annotations

from typing import Any

from core import keys as K


def finished_before(run_dir: str | None, name: str) -> bool:
    """Whether our own record (trials.parquet) has trial ``name`` as finished.

    After a driver SIGKILL, Ray's last state snapshot can be older than a trial's end, and
    ``Tuner.restore`` would start that trial again; our record is written when a trial ends.
    """
    if not run_dir:
        return False
    from analysis import results as R
    from core.storage import Location

    path = Location.parse(run_dir) / R.TRIALS_FILE  # a local path or a URI, seen from this node
    if not path.is_file():
        return False
    return name in path.read_table(columns=[R.TRIAL]).column(R.TRIAL).to_pylist()


def run_trial(
    config: dict[str, Any],
    *,
    data: Any = None,
    kind: str = "segmentation",
    run_dir: str | None = None,
) -> None:
    """Ray's entry point for one trial (bound with ``tune.with_parameters``)."""
    from ray import tune

    from trainables.task import get_task

    if finished_before(run_dir, tune.get_context().get_trial_name()):
        return  # finished before a driver crash: never trained twice
    task = get_task(kind)
    reason = task.check(config)
    if reason:
        tune.report({K.INFEASIBLE: True, K.ERROR: reason})
        return
    task.trainable()(config, data=data)
