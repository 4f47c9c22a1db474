"""Replay simulation of sweeps from recorded learning curves: the analysis half (no Ray).

``microsweep simulate`` (search/simulate.py) reads the curves of real run folders
(:func:`load_curves`), draws as many trials as asked (:func:`draw_trials`: the recorded trials
first, then a bootstrap over configurations and seeds with the seed-to-seed noise the runs
show), replays each trial order on G GPUs (:func:`run_cluster`, an event simulation on a
simulated clock whose stop decisions come from a scheduler rule, e.g. Ray's own
``ASHAScheduler`` object) and summarises FIFO against each ASHA setting (:func:`summarise`,
:func:`recommend`).

Example::

    curves = load_curves(["runs/super1"])
    trials = draw_trials(curves, 1000, rng=np.random.default_rng(0))
    out = run_cluster(trials, order, gpus=64, rule=my_rule, milestones=[2, 6], max_epochs=18)
    out.best, out.trial_epochs, out.wall_s, out.utilisation
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import results as R
from analysis.load import load_results
from core.errors import ReportError
from core.storage import Location

# simulation.parquet columns (one row per scheduler setting and trial order)
SETTING, SCHEDULER, GRACE, ETA, ORDER, PATH = (
    "setting",
    "scheduler",
    "grace",
    "eta",
    "order",
    "path",
)
BEST, TRIAL_EPOCHS, WALL, BUSY, GPUS, UTIL = (
    "best",
    "trial_epochs",
    "wall_s",
    "busy_s",
    "gpus",
    "gpu_util",
)
BEST_RATIO, EPOCHS_RATIO, STOPPED = "best_ratio", "epochs_ratio", "stopped"
SIMULATION_FILE = "simulation.parquet"
FIFO = "fifo"

# arrivals.parquet (search.arrivals.ArrivalLog): the results in the order Ray's driver took them
ARRIVALS_FILE = "arrivals.parquet"
SEQ, EVENT, TRIAL_NAME, ITERATION, VALUE, T = "seq", "event", "trial", "iteration", "value", "t"
START, RESULT, COMPLETE = "start", "result", "complete"  # the EVENT values
ARRIVALS_SCHEMA = pa.schema(
    [
        (SEQ, pa.int64()),
        (EVENT, pa.string()),
        (TRIAL_NAME, pa.string()),
        (ITERATION, pa.int64()),
        (VALUE, pa.float64()),
        (T, pa.float64()),
    ]
)


@dataclass(frozen=True)
class Curves:
    """Full-budget learning curves of real trials: val IoU and seconds of each epoch."""

    val: tuple[np.ndarray, ...]
    epoch_s: tuple[np.ndarray, ...]
    group: np.ndarray  # configuration index of each curve (seeds of one config share it)
    names: tuple[str, ...]  # "run:trial"
    max_epochs: int
    skipped: int  # trials without a full curve (stopped early, diverged, errored, infeasible)

    def __len__(self) -> int:
        return len(self.val)


def load_curves(paths: Iterable[str | Path | Location]) -> Curves:
    """Completed trials' curves of the run folders (epochs.parquet: val IoU and wall time).

    Trials ASHA stopped have no curve past their rung and are left out (counted in
    ``skipped``); a run with fewer than two completed trials is a one-line ReportError.
    """
    res = load_results(paths)
    trials, epochs = res.trials, res.epochs
    done = trials[trials[R.STATUS] == R.COMPLETED]
    if len(done) < 2:
        raise ReportError(
            f"{len(done)} completed trial(s) in {', '.join(r.path for r in res.runs)}: a replay "
            "needs at least 2 full learning curves (FIFO runs, or ASHA runs' surviving trials)"
        )
    factors = [f for f in res.factors if f in done.columns]
    keys = done[["run", *factors]].astype(str).agg("|".join, axis=1)
    group = pd.factorize(keys)[0]
    by_trial = {k: g.sort_values(R.EPOCH) for k, g in epochs.groupby(["run", R.TRIAL])}
    val, secs, names, kept = [], [], [], []
    for i, (run, trial) in enumerate(zip(done["run"], done[R.TRIAL], strict=True)):
        rows = by_trial.get((run, trial))
        if rows is None or rows[R.VAL_IOU].isna().all():
            continue
        val.append(rows[R.VAL_IOU].ffill().fillna(0.0).to_numpy(np.float64))
        secs.append(_epoch_seconds(rows))
        names.append(f"{run}:{trial}")
        kept.append(group[i])
    return Curves(
        val=tuple(val),
        epoch_s=tuple(secs),
        group=pd.factorize(np.asarray(kept))[0],
        names=tuple(names),
        max_epochs=int(max(len(v) for v in val)),
        skipped=int(len(trials) - len(val)),
    )


def _epoch_seconds(rows: pd.DataFrame) -> np.ndarray:
    """Seconds of each epoch from the cumulative ``wall_s`` (1 s where it was not recorded)."""
    if R.WALL_S not in rows:
        return np.ones(len(rows))
    wall = rows[R.WALL_S].to_numpy(np.float64)
    secs = np.diff(wall, prepend=0.0)
    good = np.isfinite(secs) & (secs > 0)
    fill = float(np.median(secs[good])) if good.any() else 1.0
    return np.where(good, secs, fill)


def _group_means(curves: Curves) -> list[np.ndarray]:
    """Each configuration's mean curve over its seeds (epoch by epoch, where seeds have it)."""
    means = []
    for g in range(int(curves.group.max()) + 1):
        members = [curves.val[i] for i in np.flatnonzero(curves.group == g)]
        length = max(len(v) for v in members)
        stack = np.full((len(members), length), np.nan)
        for row, v in zip(stack, members, strict=True):
            row[: len(v)] = v
        means.append(np.nanmean(stack, axis=0))
    return means


def seed_noise(curves: Curves) -> float:
    """The seed-to-seed standard deviation of the best val IoU within configurations (0 when
    no configuration was repeated)."""
    best = np.array([v.max() for v in curves.val])
    spread = [best[curves.group == g] for g in np.unique(curves.group)]
    resid = np.concatenate([b - b.mean() for b in spread if len(b) > 1] or [np.zeros(0)])
    return float(resid.std(ddof=1)) if len(resid) > 1 else 0.0


def draw_trials(curves: Curves, n: int, *, rng: np.random.Generator) -> Curves:
    """``n`` trials: the recorded curves first (a random subset when ``n`` is smaller), then
    bootstrap draws: a configuration at random, the length and epoch times of one of its seeds,
    and its mean curve plus the seed residual (curve minus its configuration's mean) of a
    recorded trial drawn at random, so new trials vary as much as the runs' repeats did."""
    k = min(n, len(curves))
    picked = list(rng.permutation(len(curves))[:k]) if n < len(curves) else list(range(k))
    val = [curves.val[i] for i in picked]
    secs = [curves.epoch_s[i] for i in picked]
    group = [int(curves.group[i]) for i in picked]
    means = _group_means(curves)
    for _ in range(n - k):
        g = int(rng.integers(len(means)))
        base = int(rng.choice(np.flatnonzero(curves.group == g)))
        donor = int(rng.integers(len(curves)))
        resid = curves.val[donor] - means[curves.group[donor]][: len(curves.val[donor])]
        length = len(curves.val[base])
        resid = np.pad(resid, (0, max(0, length - len(resid))), mode="edge")[:length]
        val.append(np.clip(means[g][:length] + resid, 0.0, 1.0))
        secs.append(curves.epoch_s[base])
        group.append(g)
    return Curves(
        val=tuple(val),
        epoch_s=tuple(secs),
        group=np.asarray(group, dtype=np.int64),
        names=tuple(f"draw{i}" for i in range(n)),
        max_epochs=curves.max_epochs,
        skipped=curves.skipped,
    )


def rank_correlation(curves: Curves, epoch: int) -> float:
    """Spearman's rho between the val IoU at ``epoch`` and each curve's best (NaN if < 3)."""
    from scipy.stats import spearmanr

    pairs = [(v[epoch - 1], v.max()) for v in curves.val if len(v) >= epoch]
    if len(pairs) < 3:
        return float("nan")
    early, final = np.asarray(pairs).T
    if np.ptp(early) == 0 or np.ptp(final) == 0:
        return float("nan")
    return float(spearmanr(early, final).statistic)


class StopRule(Protocol):
    """A scheduler's decisions: ``result`` answers True to stop the trial at that epoch."""

    def add(self, trial: int) -> None: ...
    def result(self, trial: int, epoch: int, value: float) -> bool: ...
    def complete(self, trial: int, epoch: int, value: float) -> None: ...


@dataclass(frozen=True)
class Outcome:
    best: float  # the best val IoU any trial reached
    trial_epochs: int
    wall_s: float  # simulated cluster time until the last trial ended
    busy_s: float  # GPU-seconds trials held a GPU
    gpus: int
    epochs: np.ndarray  # epochs each trial trained, by trial index
    stopped: np.ndarray  # whether the rule stopped it

    @property
    def utilisation(self) -> float:
        return self.busy_s / (self.gpus * self.wall_s) if self.wall_s else 0.0  # NaN: unknown


def run_cluster(
    trials: Curves,
    order: Sequence[int],
    *,
    gpus: int,
    rule: StopRule,
    milestones: Sequence[int],
    max_epochs: int,
    overhead_s: float = 0.0,
) -> Outcome:
    """Replay ``order`` on ``gpus`` one-GPU slots on a simulated clock (trials start in order
    as slots free; events at the same time are taken in start order, as Ray's controller takes
    one result at a time). ``rule`` sees each trial's value at every milestone below its last
    epoch and at its last epoch (ASHA decides at milestones only, so this is what it would see
    of a report every epoch). ``overhead_s`` is added to each trial's start."""
    n = len(trials)
    epochs, stopped = np.zeros(n, np.int64), np.zeros(n, bool)
    events: list[tuple[float, int, int, int]] = []  # (time, start number, trial, check index)
    checks: dict[int, list[int]] = {}
    cum: dict[int, np.ndarray] = {}
    queue, started, busy, now = list(order), 0, 0.0, 0.0

    def start(at: float) -> None:
        nonlocal started
        i = queue[started]
        last = min(len(trials.val[i]), max_epochs)
        checks[i] = sorted({m for m in milestones if m < last} | {last})
        cum[i] = at + overhead_s + np.cumsum(trials.epoch_s[i][:last])
        rule.add(i)
        heapq.heappush(events, (cum[i][checks[i][0] - 1], started, i, 0))
        started += 1

    while started < min(gpus, len(queue)):
        start(0.0)
    while events:
        now, seq, i, k = heapq.heappop(events)
        epoch = checks[i][k]
        value = float(trials.val[i][epoch - 1])
        stop = rule.result(i, epoch, value)
        if k + 1 < len(checks[i]) and not stop:
            heapq.heappush(events, (cum[i][checks[i][k + 1] - 1], seq, i, k + 1))
            continue
        rule.complete(i, epoch, value)
        epochs[i], stopped[i] = epoch, stop and k + 1 < len(checks[i])
        busy += now - (cum[i][0] - trials.epoch_s[i][0]) + overhead_s
        if started < len(queue):
            start(now)
    chosen = list(order)
    best = max(float(trials.val[i][: epochs[i]].max()) for i in chosen if epochs[i])
    return Outcome(best, int(epochs.sum()), now, busy, gpus, epochs, stopped)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per setting: best-IoU ratio to FIFO on the same order (mean and worst 5 % of
    orders), trial-epochs ratio, simulated wall time and GPU utilisation (means)."""
    groups = rows.groupby([SETTING, SCHEDULER, GRACE, ETA, PATH], dropna=False, sort=False)
    return groups.agg(
        orders=(ORDER, "nunique"),
        best_ratio_mean=(BEST_RATIO, "mean"),
        best_ratio_worst5=(BEST_RATIO, lambda s: float(np.quantile(s, 0.05))),
        epochs_ratio=(EPOCHS_RATIO, "mean"),
        wall_h=(WALL, lambda s: float(s.mean()) / 3600),
        gpu_util=(UTIL, "mean"),
    ).reset_index()


def with_ratios(rows: pd.DataFrame) -> pd.DataFrame:
    """``best_ratio`` and ``epochs_ratio`` of each row to the FIFO row of the same order."""
    fifo = rows[rows[SCHEDULER] == FIFO].set_index(ORDER)
    out = rows.copy()
    out[BEST_RATIO] = out[BEST] / out[ORDER].map(fifo[BEST])
    out[EPOCHS_RATIO] = out[TRIAL_EPOCHS] / out[ORDER].map(fifo[TRIAL_EPOCHS])
    return out


def recommend(summary: pd.DataFrame, *, keep: float = 0.98) -> pd.Series | None:
    """The ASHA setting with the fewest trial-epochs whose worst 5 % of orders keep at least
    ``keep`` of FIFO's best IoU (None: no ASHA setting does; run FIFO)."""
    asha = summary[(summary[SCHEDULER] != FIFO) & (summary[PATH] == "event")]
    good = asha[asha["best_ratio_worst5"] >= keep]
    if good.empty:
        return None
    return good.sort_values(["epochs_ratio", "best_ratio_worst5"], ascending=[True, False]).iloc[0]


def quote_line(summary: pd.DataFrame, *, grace: int | None, eta: int | None) -> str | None:
    """``ASHA (grace 2, eta 3) keeps 0.99 of the best (0.97 in the worst 5 % of orders) at
    0.25 of the epochs`` for the setting asked (else the recommended one); None without one."""
    asha = summary[(summary[SCHEDULER] != FIFO) & (summary[PATH] == "event")]
    row = asha[(asha[GRACE] == grace) & (asha[ETA] == eta)]
    pick = row.iloc[0] if len(row) else recommend(summary)
    if pick is None:
        return None
    return (
        f"ASHA (grace {int(pick[GRACE])}, eta {int(pick[ETA])}) keeps "
        f"{pick['best_ratio_mean']:.2f} of the best ({pick['best_ratio_worst5']:.2f} in the "
        f"worst 5 % of orders) at {pick['epochs_ratio']:.2f} of the epochs"
    )
