"""The function Ray runs for each trial: a feasibility check, then the trainable of the kind.

``kind`` is ``segmentation``, ``pretraining`` or ``module:function`` (a custom trainable that
follows the reporting contract of docs/contracts.md). A configuration that cannot be built
reports ``infeasible=True`` with its reason and returns, without training.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from core.errors import UserError

TRAINABLES = {
    "segmentation": "trainables.segmentation:segmentation_trainable",
    "pretraining": "trainables.pretraining:pretraining_trainable",
}


def resolve_trainable(kind: str) -> Callable[..., Any]:
    """The trainable function for ``kind``; a one-line error when it cannot be imported."""
    target = TRAINABLES.get(kind, kind)
    module_name, _, func_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise UserError(f"kind {kind!r}: cannot import module {module_name!r} ({err})") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UserError(f"kind {kind!r}: module {module_name!r} has no function {func_name!r}")
    return func


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

    from search.feasibility import checker_for

    if finished_before(run_dir, tune.get_context().get_trial_name()):
        return  # finished before a driver crash: never trained twice

    reason = checker_for(kind)(config)
    if reason:
        tune.report({"infeasible": True, "error": reason})
        return
    resolve_trainable(kind)(config, data=data)
