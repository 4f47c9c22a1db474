"""The epoch loop both trainables share: step, checkpoint, report; ``diverged`` ends it.

Ray stays at the edge: :func:`run_epochs` takes any ``report(metrics, folder)`` callable;
:func:`ray_report` is the one that talks to Ray Tune.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from trainables import checkpoint as ckpt
from trainables.loop import Diverged
from trainables.report_file import write_report

Reporter = Callable[[dict[str, Any], Path | None], None]


class EpochTrial(Protocol):
    finished: bool
    epoch: int
    last_result: dict[str, Any] | None  # the restored checkpoint's epoch report, if any
    history: list[dict[str, Any]]  # every epoch's plain report so far (restored with the state)

    def step(self) -> dict[str, Any]: ...

    def state(self) -> ckpt.TrialState: ...


def run_epochs(
    trial: EpochTrial,
    report: Reporter,
    *,
    final: Callable[[Path], dict[str, Any]],
    name: str,
    every: int = 1,
) -> None:
    """Epochs until ``trial.finished``: one report each, ``final`` added to the last one.

    Every ``every``-th epoch and the last one carry a checkpoint; a trial resumed from one
    repeats the epochs after it, with the same results. A trial restored from its *last*
    checkpoint (the driver died before it recorded the end) reports its last epoch and
    ``final`` again. A non-finite loss or metric ends the trial with one ``diverged`` report
    holding no objective; the function returns (it never raises, so Ray does not retry it).

    The first report after a restore carries ``history``: the reports of every epoch up to the
    checkpoint (a JSON array, which Ray's loggers pass over), so that the driver's record
    regains any it had not written when it was killed.
    """
    earlier = list(trial.history)
    if trial.finished and trial.last_result:
        _save_and_report(trial, {**trial.last_result, **_history(earlier)}, report, final, name)
        return
    while not trial.finished:
        try:
            result = trial.step()
        except Diverged as err:
            diverged = {"diverged": True, "epoch": trial.epoch + 1, "error": str(err)}
            report({**diverged, **_history(earlier)}, None)
            return
        trial.history.append(_plain_dict(result))
        result.update(_history(earlier))
        earlier = []
        if not trial.finished and trial.epoch % every:
            report({**result, "time_checkpoint_s": 0.0}, None)
            continue
        _save_and_report(trial, result, report, final, name)


def _save_and_report(
    trial: EpochTrial,
    result: dict[str, Any],
    report: Reporter,
    final: Callable[[Path], dict[str, Any]],
    name: str,
) -> None:
    """Checkpoint the trial (its epoch report kept inside), add ``final`` at the end, report."""
    t0 = time.perf_counter()
    state = trial.state()
    state.extra["result"] = _plain_dict(result)
    state.extra["history"] = list(trial.history)
    folder = ckpt.save_to_scratch(state, prefix=f"microsweep-{name}-")
    write_report(folder, state.extra["result"], needs=state.extra.get(ckpt.NEEDS))
    result["time_checkpoint_s"] = time.perf_counter() - t0
    try:
        if trial.finished:
            result.update(final(folder))
        report(result, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _history(earlier: list[dict[str, Any]]) -> dict[str, str]:
    return {"history": json.dumps(earlier)} if earlier else {}


def _plain_dict(result: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """The epoch's own metrics as plain values (``history`` is a report's, not the epoch's)."""
    return {k: p for k, v in result.items() if k != "history" and (p := _plain(v)) is not None}


def _plain(value: Any) -> bool | int | float | str | None:
    """A python scalar (numpy's too) for the checkpoint, which loads with weights_only=True."""
    value = value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value
    return value if isinstance(value, bool | int | float | str) else None


def ray_report(metrics: dict[str, Any], folder: Path | None) -> None:
    """``tune.report`` with the folder as the epoch's checkpoint (Ray copies it to storage)."""
    from ray import tune

    checkpoint = tune.Checkpoint.from_directory(str(folder)) if folder else None
    tune.report(metrics, checkpoint=checkpoint)
