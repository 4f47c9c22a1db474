"""The order in which a sweep's driver took its trials' results: ``RUN/arrivals.parquet``.

Ray's asynchronous ASHA decides on each result in the order the controller processes them
(who reaches a rung first matters), and Ray calls its callbacks in that same order, right after
the scheduler's decision. :class:`ArrivalLog` records that sequence (one row per result, and
one per trial that ended), so that a simulation can be checked against the exact order Ray saw
(:func:`analysis.simulation.replay_arrivals`), not only against one that timing reproduces.

Example::

    run_sweep(exp, callbacks=[ArrivalLog(str(exp.run_dir))])   # RUN/arrivals.parquet
"""

from __future__ import annotations

import time
from typing import Any

import pyarrow as pa
from ray import tune

from analysis import simulation as S
from core import keys as K
from core import storage
from core.storage import Location
from search.results_writer import trial_name


class ArrivalLog(tune.Callback):
    """Rows ``seq, event, trial, iteration, value, t`` (seconds since the sweep's start),
    written to ``run_dir/arrivals.parquet`` when the experiment ends."""

    def __init__(self, run_dir: str, *, metric: str = K.VAL_IOU) -> None:
        self.run_dir, self.metric = str(run_dir), metric
        self.rows: list[dict[str, Any]] = []
        self.t0 = time.monotonic()

    def setup(self, **info: Any) -> None:
        self.rows, self.t0 = [], time.monotonic()

    def _add(self, event: str, trial: Any, result: dict[str, Any] | None) -> None:
        result = result or {}
        value = result.get(self.metric)
        self.rows.append({
            S.SEQ: len(self.rows), S.EVENT: event, S.TRIAL_NAME: trial_name(trial),
            S.ITERATION: result.get("training_iteration"),
            S.VALUE: None if value is None else float(value), S.T: time.monotonic() - self.t0,
        })  # fmt: skip

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._add(S.START, trial, None)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        self._add(S.RESULT, trial, result)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._add(S.COMPLETE, trial, getattr(trial, "last_result", None))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        table = pa.Table.from_pylist(self.rows, schema=S.ARRIVALS_SCHEMA)
        storage.write_parquet(Location.parse(self.run_dir) / S.ARRIVALS_FILE, table)
