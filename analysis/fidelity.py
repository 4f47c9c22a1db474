"""How faithful a replay is to a real ASHA sweep: its decisions in the order Ray took the
results, and its prediction from the FIFO run's curves alone.

A real ASHA run that recorded ``arrivals.parquet`` (:class:`search.arrivals.ArrivalLog`: every
result in the order the driver took it) is checked two ways:

- :func:`replay_arrivals`: the same results, in the same order, fed to a stop rule (Ray's own
  ``ASHAScheduler`` object through ``search.simulate.RayRule``); every trial must stop exactly
  where the real one stopped. This isolates the scheduler logic from timing.
- :func:`launch_order` + :func:`analysis.simulation.run_cluster` on the FIFO run's curves (every
  configuration to the end): the prediction ``microsweep simulate`` makes before the ASHA run,
  where who reaches a rung first comes from the recorded epoch times and :func:`start_overhead`
  (a trial's start before its first epoch, measured in the arrivals).

Example::

    arrivals = load_arrivals("bench/recorded/asha_vs_fifo/bench-asha")
    decided = replay_arrivals(arrivals, rule, max_epochs=18)    # one row per trial
    assert (decided.predicted_epochs == decided.epochs).all()
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import results as R
from analysis import simulation as S
from analysis.load import Results
from core.errors import ReportError
from core.storage import Location


def load_arrivals(run: str | Path | Location) -> pd.DataFrame:
    """``RUN/arrivals.parquet`` in its recorded order (one line when the run has none)."""
    path = Location.parse(str(run)) / S.ARRIVALS_FILE
    if not path.is_file():
        raise ReportError(f"'{run}' has no {S.ARRIVALS_FILE} (record it with search.arrivals)")
    return path.read_table().to_pandas().sort_values(S.SEQ, ignore_index=True)


def replay_arrivals(arrivals: pd.DataFrame, rule: S.StopRule, *, max_epochs: int) -> pd.DataFrame:
    """Feed the recorded events to ``rule`` in their order; per trial: the epochs it trained
    (``epochs``), the epoch at which ``rule`` first said stop (``stop_at``, NaN: never) and
    the epochs that predicts (``predicted_epochs``: ``stop_at``, else ``max_epochs``)."""
    ids: dict[str, int] = {}
    stop_at: dict[str, float] = {}
    for ev in arrivals.itertuples(index=False):
        name, kind = getattr(ev, S.TRIAL_NAME), getattr(ev, S.EVENT)
        if kind == S.START and name not in ids:
            ids[name] = len(ids)
            rule.add(ids[name])
        elif kind == S.RESULT and name in ids and not pd.isna(getattr(ev, S.VALUE)):
            epoch = int(getattr(ev, S.ITERATION))
            if rule.result(ids[name], epoch, float(getattr(ev, S.VALUE))):
                stop_at.setdefault(name, epoch)
        elif kind == S.COMPLETE and name in ids and not pd.isna(getattr(ev, S.VALUE)):
            rule.complete(ids[name], int(getattr(ev, S.ITERATION)), float(getattr(ev, S.VALUE)))
    results = arrivals[arrivals[S.EVENT] == S.RESULT]
    out = results.groupby(S.TRIAL_NAME)[S.ITERATION].max().rename("epochs").reset_index()
    out["stop_at"] = out[S.TRIAL_NAME].map(stop_at).astype(float)
    out["predicted_epochs"] = out["stop_at"].fillna(max_epochs).astype(int)
    return out


def start_overhead(arrivals: pd.DataFrame, epochs: pd.DataFrame) -> float:
    """Median seconds from a trial's start to its first result beyond its first epoch's
    recorded wall time (worker start, imports, model build: what timing adds to a start)."""
    ev = arrivals.set_index([S.EVENT, S.TRIAL_NAME])[S.T]
    first = arrivals[(arrivals[S.EVENT] == S.RESULT) & (arrivals[S.ITERATION] == 1)]
    walls = epochs[epochs[R.EPOCH] == 1].set_index(R.TRIAL)[R.WALL_S]
    gaps = [
        t - ev.get((S.START, name), np.nan) - walls.get(name, np.nan)
        for name, t in zip(first[S.TRIAL_NAME], first[S.T], strict=True)
    ]
    gaps = [g for g in gaps if np.isfinite(g)]
    return max(0.0, float(np.median(gaps))) if gaps else 0.0


def launch_order(curves: S.Curves) -> list[int]:
    """The curves in the order their sweep launched them (Ray's trial-id counter, the end of
    ``run:trial``); a grid with the same ``search.seed`` launches in the same order."""
    counters = [int(name.rsplit("_", 1)[-1]) for name in curves.names]
    return [int(i) for i in np.argsort(counters, kind="stable")]


def run_curves(res: Results, run: int = 0) -> S.Curves:
    """Every trial of run ``run`` with the epochs it recorded (a stopped trial's curve ends
    where it stopped), in trials.parquet order; named ``run:trial`` like :func:`S.load_curves`."""
    trials = res.trials[res.trials["run"] == run]
    epochs = res.epochs[res.epochs["run"] == run]
    by_trial = {t: g.sort_values(R.EPOCH) for t, g in epochs.groupby(R.TRIAL)}
    names = [t for t in trials[R.TRIAL] if t in by_trial]
    val = tuple(by_trial[t][R.VAL_IOU].ffill().fillna(0.0).to_numpy(np.float64) for t in names)
    return S.Curves(
        val=val, epoch_s=tuple(S._epoch_seconds(by_trial[t]) for t in names),
        group=np.arange(len(names)), names=tuple(f"{run}:{t}" for t in names),
        max_epochs=max(map(len, val)), skipped=len(trials) - len(names),
    )  # fmt: skip


class Recorder:
    """A stop rule that logs the results it is asked about, in order, then asks ``rule``."""

    def __init__(self, rule: S.StopRule) -> None:
        self.rule, self.log = rule, []  # (trial index, epoch, stop)

    def add(self, trial: int) -> None:
        self.rule.add(trial)

    def result(self, trial: int, epoch: int, value: float) -> bool:
        stop = self.rule.result(trial, epoch, value)
        self.log.append((trial, epoch, stop))
        return stop

    def complete(self, trial: int, epoch: int, value: float) -> None:
        self.rule.complete(trial, epoch, value)


def rung_order(arrivals: pd.DataFrame, epoch: int) -> list[str]:
    """The trials in the order Ray's driver took their result of ``epoch``."""
    at = arrivals[(arrivals[S.EVENT] == S.RESULT) & (arrivals[S.ITERATION] == epoch)]
    return at.sort_values(S.SEQ)[S.TRIAL_NAME].tolist()


def driver_seconds(curves: S.Curves, arrivals: pd.DataFrame) -> S.Curves:
    """``curves`` with each epoch's seconds as Ray's driver saw them: the time between a
    trial's results (its first epoch from its start), reporting and the trial's start included."""
    ev = arrivals.sort_values(S.SEQ)
    secs = []
    for name, own in zip(curves.names, curves.epoch_s, strict=True):
        trial = ev[ev[S.TRIAL_NAME] == name.split(":", 1)[1]]
        start = trial.loc[trial[S.EVENT] == S.START, S.T]
        times = trial.loc[trial[S.EVENT] == S.RESULT, S.T].to_numpy(np.float64)
        if start.empty or len(times) != len(own):
            secs.append(own)
            continue
        secs.append(np.diff(times, prepend=float(start.iloc[0])))
    return replace(curves, epoch_s=tuple(secs))
