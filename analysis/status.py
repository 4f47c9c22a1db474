"""Where a sweep stands, from its run folder alone: counts, best so far, running trials, ETA.

Pure reading of ``run.json``, ``trials.parquet`` (one row per *ended* trial) and
``epochs.parquet`` (rows of running trials too) through :class:`core.storage.Location`, so it
works on a finished run, on one being written by a live sweep, and against ``s3://`` from a
laptop; it never touches Ray. The live console of ``microsweep sweep`` (search.console) builds
the same :class:`Snapshot` from Ray's events and prints it with the same functions.

Example::

    from analysis.status import read_status, format_status
    print(format_status(read_status("runs/demo")))
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass
from typing import Any

from analysis import results as R
from core.storage import Location

FAILED = (R.ERRORED, R.DIVERGED)  # ended without a usable result: listed with their reasons
PLANNED_TRIALS = "planned_trials"  # run.json: trials the plan launches (infeasible excluded)
PLANNED_EPOCHS = "planned_trial_epochs"  # run.json: trial-epochs the plan expects (ASHA: estimate)


@dataclass(frozen=True)
class Failure:
    trial: str
    status: str  # R.ERRORED or R.DIVERGED
    epochs: int
    reason: str


@dataclass(frozen=True)
class Best:
    trial: str
    value: float
    config: str  # "decoder=Unet init=none" (the factors that vary), or the trial's name


@dataclass(frozen=True)
class StageCounts:
    """A stage after the search (``recommend``'s confirm trials): ended by status, running."""

    stage: str
    counts: dict[str, int]
    running: int


@dataclass(frozen=True)
class Snapshot:
    """A sweep's state at one moment; ``counts`` are ended trials by status."""

    metric: str
    planned_trials: int | None
    planned_epochs: int | None
    counts: dict[str, int]
    running: dict[str, tuple[int, float | None]]  # trial -> (epochs reported, last metric)
    epochs_done: int  # trial-epochs reported so far
    elapsed_s: float | None
    best: Best | None = None
    failures: tuple[Failure, ...] = ()
    infeasible: int = 0  # dropped by the plan, never trained
    earlier: int = 0  # ended before a --resume (the console saw no end of them)
    later: tuple[StageCounts, ...] = ()  # stages after the search (its plan counts the search)

    @property
    def ended(self) -> int:
        return sum(self.counts.values()) + self.earlier

    @property
    def pending(self) -> int | None:
        if self.planned_trials is None:
            return None
        return max(self.planned_trials - self.ended - len(self.running), 0)

    @property
    def finished(self) -> bool:
        return self.planned_trials is not None and self.ended >= self.planned_trials

    def eta_s(self) -> float | None:
        """Seconds left: elapsed per reported trial-epoch times the planned ones left."""
        if self.finished:
            return 0.0
        if not (self.planned_epochs and self.epochs_done and self.elapsed_s):
            return None
        left = self.planned_epochs - self.epochs_done
        return self.elapsed_s * left / self.epochs_done if left > 0 else None


def clock(seconds: float | None) -> str:
    """``1:02:03`` / ``4:05``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    s = round(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}:{m:02d}:{s % 60:02d}" if h else f"{m}:{s % 60:02d}"


def counts_text(snap: Snapshot) -> str:
    """``5/16 ended (3 completed, 1 stopped, 1 failed), 2 running, 9 pending``."""
    parts = _status_parts(snap.counts)
    if snap.earlier:
        parts.append(f"{snap.earlier} before resume")
    total = "?" if snap.planned_trials is None else snap.planned_trials
    text = f"{snap.ended}/{total} ended ({', '.join(parts)}), {len(snap.running)} running"
    return text + ("" if snap.pending is None else f", {snap.pending} pending")


def _status_parts(c: dict[str, int]) -> list[str]:
    parts = [f"{c.get(R.COMPLETED, 0)} completed", f"{c.get(R.STOPPED, 0)} stopped"]
    parts.append(f"{sum(c.get(s, 0) for s in FAILED)} failed")
    if c.get(R.INFEASIBLE):
        parts.append(f"{c[R.INFEASIBLE]} infeasible")
    return parts


def progress_line(snap: Snapshot) -> str:
    """The one live line: counts | best so far | elapsed, ETA."""
    best = snap.best
    best_text = f"best {snap.metric} {best.value:.4f} ({best.config})" if best else "best -"
    eta = "done" if snap.finished else f"ETA {clock(snap.eta_s())}"
    return f"trials {counts_text(snap)} | {best_text} | {clock(snap.elapsed_s)} elapsed, {eta}"


def format_status(snap: Snapshot, *, run: str = "") -> str:
    """The table of ``microsweep status``: counts, best, running trials, failures, ETA."""
    lines = [f"run: {run}"] if run else []
    lines.append(f"trials: {counts_text(snap)}")
    if snap.infeasible:
        lines.append(f"infeasible (never trained): {snap.infeasible}")
    if snap.best:
        b = snap.best
        lines.append(f"best {snap.metric}: {b.value:.4f}  {b.config}  ({b.trial})")
    epochs = f"{snap.epochs_done}/{snap.planned_epochs or '?'} trial-epochs"
    if snap.finished:
        lines.append(f"progress: {epochs}, finished")
    else:
        eta = f"ETA {clock(snap.eta_s())}"
        lines.append(f"progress: {epochs}, {clock(snap.elapsed_s)} since start, {eta}")
    if snap.running:
        lines.append("running:")
        for trial, (epoch, value) in sorted(snap.running.items()):
            shown = "-" if value is None else f"{value:.4f}"
            lines.append(f"  {trial}  epoch {epoch}  {snap.metric} {shown}")
    for stage in snap.later:
        ended = sum(stage.counts.values())
        parts = ", ".join(_status_parts(stage.counts))
        lines.append(f"{stage.stage}: {ended} ended ({parts}), {stage.running} running")
    if snap.failures:
        lines.append("failed:")
        for f in snap.failures:
            lines.append(f"  {f.trial}  {f.status} after {f.epochs} epoch(s): {f.reason}")
    return "\n".join(lines)


def describe(config: dict[str, Any], factors: list[str], fallback: str) -> str:
    """``decoder=Unet lr=0.0001039`` for the given factors, or ``fallback`` when there are none."""
    parts = [f"{k}={show_value(config[k])}" for k in factors if config.get(k) is not None]
    return " ".join(parts) or fallback


def show_value(value: object) -> str:
    """A factor's value in a line: floats to 4 significant digits (sampled ones have 17)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def read_status(run_dir: str | Location, *, now: datetime.datetime | None = None) -> Snapshot:
    """The snapshot of the run folder ``run_dir`` (a path or URI) as its files say now."""
    run = Location.parse(run_dir)
    if not (run / R.RUN_FILE).is_file():
        from core.errors import UserError

        raise UserError(f"'{run}' is not a run folder (no {R.RUN_FILE}); pass STORAGE/NAME")
    info = json.loads((run / R.RUN_FILE).read_bytes())
    all_trials = _rows(run / R.TRIALS_FILE)
    stage_of = {r[R.TRIAL]: r.get(R.STAGE) or R.SEARCH for r in all_trials}
    trials, later = _by_stage(all_trials, stage_of)
    epochs, later_epochs = _by_stage(_rows(run / R.EPOCHS_FILE), stage_of)
    metric = info.get("metric") or R.VAL_IOU
    launched = [r for r in trials if r.get(R.STATUS) != R.INFEASIBLE or r.get(R.EPOCHS)]
    ended = {r[R.TRIAL] for r in launched}
    counts: dict[str, int] = {}
    for row in launched:
        counts[row[R.STATUS]] = counts.get(row[R.STATUS], 0) + 1
    running: dict[str, tuple[int, float | None]] = {}
    for row in sorted(epochs, key=lambda r: r[R.EPOCH]):
        if row[R.TRIAL] not in ended:
            running[row[R.TRIAL]] = (int(row[R.EPOCH]), row.get(metric))
    return Snapshot(
        metric=metric,
        planned_trials=info.get(PLANNED_TRIALS),
        planned_epochs=info.get(PLANNED_EPOCHS),
        counts=counts,
        running=running,
        epochs_done=len(epochs),
        elapsed_s=_elapsed(info.get("created"), now),
        best=_best(launched, epochs, ended, metric, list(info.get("factors") or [])),
        failures=tuple(_failure(r) for r in launched if r[R.STATUS] in FAILED),
        infeasible=len(trials) - len(launched),
        later=_later_stages(later, later_epochs),
    )


def _by_stage(
    rows: list[dict[str, Any]], stage_of: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The search stage's rows and the others, each with its ``stage`` (epoch rows written
    before they had one: their trial's; a running trial's without one: the search's)."""
    rows = [{**r, R.STAGE: r.get(R.STAGE) or stage_of.get(r[R.TRIAL], R.SEARCH)} for r in rows]
    return [r for r in rows if r[R.STAGE] == R.SEARCH], [r for r in rows if r[R.STAGE] != R.SEARCH]


def _later_stages(
    trials: list[dict[str, Any]], epochs: list[dict[str, Any]]
) -> tuple[StageCounts, ...]:
    out = []
    for stage in dict.fromkeys(r[R.STAGE] for r in [*trials, *epochs]):
        ended = {r[R.TRIAL] for r in trials if r[R.STAGE] == stage}
        counts: dict[str, int] = {}
        for row in (r for r in trials if r[R.STAGE] == stage):
            counts[row[R.STATUS]] = counts.get(row[R.STATUS], 0) + 1
        running = {e[R.TRIAL] for e in epochs if e[R.STAGE] == stage} - ended
        out.append(StageCounts(stage, counts, len(running)))
    return tuple(out)


def _rows(path: Location) -> list[dict[str, Any]]:
    return path.read_table().to_pylist() if path.is_file() else []


def _elapsed(created: str | None, now: datetime.datetime | None) -> float | None:
    try:
        start = datetime.datetime.fromisoformat(str(created))
    except ValueError:
        return None
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return max((now - start).total_seconds(), 0.0)


def _best(trials: list, epochs: list, ended: set, metric: str, factors: list) -> Best | None:
    """The best ended trial's value, or a running trial's best epoch so far if higher."""
    varying = [k for k in factors if len({str(r.get(k)) for r in trials}) > 1] or factors
    scored = [(r[metric], r[R.TRIAL], describe(r, varying, r[R.TRIAL])) for r in trials
              if _finite(r.get(metric)) and r[R.STATUS] != R.DIVERGED]  # fmt: skip
    scored += [(e[metric], e[R.TRIAL], e[R.TRIAL]) for e in epochs
               if e[R.TRIAL] not in ended and _finite(e.get(metric))]  # fmt: skip
    if not scored:
        return None
    value, trial, config = max(scored, key=lambda s: s[0])
    return Best(trial=trial, value=float(value), config=config)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _failure(row: dict[str, Any]) -> Failure:
    reason = row.get(R.ERROR) or "no reason recorded"
    return Failure(row[R.TRIAL], row[R.STATUS], int(row.get(R.EPOCHS) or 0), str(reason))
