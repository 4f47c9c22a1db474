"""Paper-style aggregation of trial tables: pure functions of pandas tables, no I/O.

IoU values in the run tables are fractions; everything returned here is in percent.
Standard deviations are sample standard deviations (ddof=1); a cell with one trial has no
standard deviation (``std`` is NaN, shown as the mean alone); a cell with no trial is empty.

Example::

    trials = load_runs(["runs/super1", "runs/ebc1"])
    long = aggregate(trials, ["init"], across="dataset")      # n, mean, std per level × dataset
    wide = format_table(long, ["init"], across="dataset")     # "93.6±8.7" strings
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import results as R
from analysis.load import RUN
from core.errors import ReportError

PERCENT = 100.0
VALUE = "value"  # the aggregated metric of a trial, in percent
SOURCE = "source"  # where VALUE came from
SOURCE_TEST = "test IoU"
SOURCE_RUNG = "val IoU at last rung (ASHA-stopped)"
UNSET = "(unset)"  # level shown for a trial whose run did not have the factor
N, MEAN, STD = "n", "mean", "std"


@dataclass(frozen=True)
class Cell:
    """One table cell: mean and sample std in percent over ``n`` trials."""

    mean: float
    std: float
    n: int

    def __str__(self) -> str:
        return format_cell(self.mean, self.std, self.n)


def format_cell(mean: float, std: float, n: int) -> str:
    """``93.6±8.7``; the mean alone when n == 1 (no sample std); ``""`` when n == 0."""
    if n == 0 or not math.isfinite(mean):
        return ""
    if n == 1 or not math.isfinite(std):
        return f"{mean:.1f}"
    return f"{mean:.1f}±{std:.1f}"


def summarize(values: Iterable[float]) -> Cell:
    """Mean, sample std (ddof=1) and count of the finite ``values`` (percent in, percent out)."""
    arr = np.asarray(list(values), dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return Cell(math.nan, math.nan, 0)
    std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan
    return Cell(float(arr.mean()), std, int(arr.size))


def error_reduction(iou_a: float, iou_b: float) -> float:
    """Relative error reduction of b over a in percent, as the paper computes it.

    error = 100 − IoU (IoU in percent); reduction = (e_a − e_b) / e_a. ``(74.8, 93.0)`` → 72.2.
    """
    e_a, e_b = PERCENT - iou_a, PERCENT - iou_b
    if e_a <= 0 or not math.isfinite(e_a) or not math.isfinite(e_b):
        return math.nan
    return (e_a - e_b) / e_a * PERCENT


def _sort_key(value: object) -> tuple:
    if isinstance(value, bool | np.bool_):
        return (1, float(value), "")
    if isinstance(value, int | float | np.integer | np.floating):
        return (1, float(value), "") if math.isfinite(float(value)) else (3, 0.0, "")
    return (2 if value != UNSET else 3, 0.0, str(value))


def ordered(values: Iterable[object]) -> list:
    """Distinct values in a stable order: numbers ascending, then strings, then ``(unset)``."""
    return sorted(set(values), key=_sort_key)


def check_factors(trials: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [n for n in names if n not in trials.columns]
    if missing:
        raise ReportError(
            f"unknown factor {', '.join(repr(m) for m in missing)}; "
            f"choose from: {', '.join(sorted(factor_columns(trials)))}"
        )


def factor_columns(trials: pd.DataFrame) -> list[str]:
    """The columns of ``trials`` that hold factors (not results, statuses or the seed)."""
    return [c for c in trials.columns if c not in _NON_FACTORS and ":" not in c]


_NON_FACTORS = {
    RUN,
    R.TRIAL,
    R.EXPERIMENT,
    R.DATASET,
    R.STATUS,
    R.EPOCHS,
    R.BEST_EPOCH,
    R.VAL_IOU,
    R.TEST_IOU,
    R.WALL_S,
    R.CPU,
    R.GPU,
    R.NODE,
    R.ERROR,
    R.CHECKPOINT,
    R.SEED,
    R.STAGE,
    R.FOLD,  # recommend --folds
}


def with_levels(trials: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """A copy whose ``by`` columns hold no missing values (``(unset)`` instead)."""
    check_factors(trials, by)
    out = trials.copy()
    for col in by:
        if out[col].isna().any():
            out[col] = out[col].astype(object).where(out[col].notna(), UNSET)
    return out


def last_epoch_val(epochs: pd.DataFrame) -> pd.Series:
    """Val IoU at each trial's last reported epoch, indexed by (run, trial)."""
    if epochs.empty:
        return pd.Series(dtype=float)
    last = epochs.sort_values([RUN, R.TRIAL, R.EPOCH]).groupby([RUN, R.TRIAL]).tail(1)
    return last.set_index([RUN, R.TRIAL])[R.VAL_IOU].astype(float)


def metric_values(
    trials: pd.DataFrame,
    epochs: pd.DataFrame | None = None,
    *,
    include_stopped: bool = False,
) -> pd.DataFrame:
    """The trials that enter the tables, with ``VALUE`` (percent) and its ``SOURCE``.

    Completed trials with a finite test IoU enter with it. With ``include_stopped``, ASHA-stopped
    trials also enter with their val IoU at the last epoch they reached (their last rung).
    Diverged, errored and infeasible trials never enter; count them with :func:`status_counts`.
    """
    done = trials[(trials[R.STATUS] == R.COMPLETED) & np.isfinite(trials[R.TEST_IOU].astype(float))]
    done = done.assign(**{VALUE: done[R.TEST_IOU].astype(float) * PERCENT, SOURCE: SOURCE_TEST})
    if not include_stopped:
        return done
    stopped = trials[trials[R.STATUS] == R.STOPPED]
    last = last_epoch_val(epochs if epochs is not None else pd.DataFrame())
    keys = pd.MultiIndex.from_arrays([stopped[RUN], stopped[R.TRIAL]])
    vals = last.reindex(keys).to_numpy(dtype=float) * PERCENT
    stopped = stopped.assign(**{VALUE: vals, SOURCE: SOURCE_RUNG})
    stopped = stopped[np.isfinite(stopped[VALUE])]
    return pd.concat([done, stopped], ignore_index=True)


def _level_rows(trials: pd.DataFrame, by: Sequence[str]) -> list[tuple]:
    combos = trials[list(by)].drop_duplicates().itertuples(index=False, name=None)
    return sorted(set(combos), key=lambda t: tuple(_sort_key(v) for v in t))


def aggregate(
    trials: pd.DataFrame,
    by: Sequence[str] | str,
    *,
    across: str = R.DATASET,
    epochs: pd.DataFrame | None = None,
    include_stopped: bool = False,
) -> pd.DataFrame:
    """Long table: one row per level of ``by`` × value of ``across`` with n, mean and std (%).

    Every level seen in any trial (whatever its status) gets a row for every ``across`` value;
    cells without a trial have n == 0 and NaN mean/std.
    """
    by = [by] if isinstance(by, str) else list(by)
    trials = with_levels(trials, [*by, across])
    vals = metric_values(trials, epochs, include_stopped=include_stopped)
    stats = vals.groupby([*by, across], sort=False)[VALUE].agg(["count", "mean", "std"])
    rows = []
    for level in _level_rows(trials, by):
        for col in ordered(trials[across]):
            key = (*level, col)
            hit = stats.loc[key] if key in stats.index else None
            n = int(hit["count"]) if hit is not None else 0
            mean = float(hit["mean"]) if n else math.nan
            std = float(hit["std"]) if n > 1 else math.nan
            rows.append((*key, n, mean, std))
    return pd.DataFrame(rows, columns=[*by, across, N, MEAN, STD])


def level_label(level: tuple | object) -> str:
    parts = level if isinstance(level, tuple) else (level,)
    return " × ".join(str(p) for p in parts)


def format_table(long: pd.DataFrame, by: Sequence[str], *, across: str = R.DATASET) -> pd.DataFrame:
    """Wide table of strings: rows = levels of ``by``, columns = ``across`` values.

    A cell reads ``93.6±8.7 (n=5)``; ``93.6 (n=1)`` for one trial; empty for none.
    """
    by = list(by)
    cells = long.apply(
        lambda r: "" if r[N] == 0 else f"{format_cell(r[MEAN], r[STD], r[N])} (n={r[N]})", axis=1
    )
    frame = long.assign(cell=cells if len(long) else pd.Series(dtype=str))
    frame["level"] = [level_label(tuple(t)) for t in frame[by].itertuples(index=False, name=None)]
    levels = list(dict.fromkeys(frame["level"]))
    cols = list(dict.fromkeys(frame[across]))
    wide = frame.pivot(index="level", columns=across, values="cell").reindex(levels)[cols]
    wide.index.name = " × ".join(by)
    wide.columns.name = None
    return wide.fillna("")


def status_counts(
    trials: pd.DataFrame, by: Sequence[str] | str, *, across: str | None = None
) -> pd.DataFrame:
    """Trial counts per status (every status in :data:`STATUSES` as a column) and ``total``."""
    by = [by] if isinstance(by, str) else list(by)
    keys = [*by, across] if across else by
    trials = with_levels(trials, keys)
    counts = trials.groupby(keys)[R.STATUS].value_counts().unstack(fill_value=0)
    extra = [c for c in counts.columns if c not in R.STATUSES]
    counts = counts.reindex(columns=[*R.STATUSES, *sorted(extra)], fill_value=0)
    counts["total"] = counts.sum(axis=1)
    order = _level_rows(trials, keys)
    index = order if len(keys) > 1 else [k[0] for k in order]
    return counts.reindex(index).astype(int)


def top_models(
    trials: pd.DataFrame, by: Sequence[str] | str, *, across: str = R.DATASET
) -> pd.DataFrame:
    """Per level of ``by`` × ``across``: the completed trial with the best val IoU and its test
    IoU (percent). Ties go to the first trial by run and name, so the choice is reproducible."""
    by = [by] if isinstance(by, str) else list(by)
    trials = with_levels(trials, [*by, across])
    ok = trials[(trials[R.STATUS] == R.COMPLETED) & np.isfinite(trials[R.VAL_IOU].astype(float))]
    ok = ok.sort_values([R.VAL_IOU, RUN, R.TRIAL], ascending=[False, True, True], kind="stable")
    best = ok.groupby([*by, across], sort=False).head(1)
    cols = [*by, across, RUN, R.TRIAL, R.VAL_IOU, R.TEST_IOU]
    best = best[cols].assign(
        **{R.VAL_IOU: best[R.VAL_IOU] * PERCENT, R.TEST_IOU: best[R.TEST_IOU] * PERCENT}
    )
    order = {k: i for i, k in enumerate(_level_rows(trials, [*by, across]))}
    rank = [order[tuple(t)] for t in best[[*by, across]].itertuples(index=False, name=None)]
    return best.assign(_rank=rank).sort_values("_rank").drop(columns="_rank").reset_index(drop=True)


def compare_top(
    trials: pd.DataFrame, factor: str, a: object, b: object, *, across: str = R.DATASET
) -> pd.DataFrame:
    """Top model of level ``a`` vs level ``b`` of ``factor`` per ``across`` value: their test
    IoU (percent) and the relative error reduction of b over a (percent, see
    :func:`error_reduction`). Rows where either level has no completed trial hold NaN."""
    top = top_models(trials, factor, across=across)
    rows = []
    for col in ordered(with_levels(trials, [across])[across]):
        here = top[top[across] == col].set_index(factor)[R.TEST_IOU]
        iou_a = float(here.get(a, math.nan))
        iou_b = float(here.get(b, math.nan))
        rows.append((col, iou_a, iou_b, error_reduction(iou_a, iou_b)))
    return pd.DataFrame(rows, columns=[across, f"top {a}", f"top {b}", "error reduction %"])


def missing_repeats(
    trials: pd.DataFrame, factors: Sequence[str], seeds: dict[int, Sequence[int]] | None = None
) -> pd.DataFrame:
    """Configurations (all ``factors`` but the seed, within one run) lacking repeats.

    Expected seeds are ``seeds[run]`` when given (``run.json["seeds"]``), else every seed seen
    in that run. ``absent``: seeds with no trial at all; ``not_completed``: seeds whose trial did
    not complete. Only rows with something absent or not completed are returned.
    """
    factors = [f for f in factors if f in trials.columns and f != R.SEED]
    cols = [RUN, R.EXPERIMENT, R.DATASET, "config", "expected", "absent", "not_completed"]
    if not factors:
        return pd.DataFrame(columns=cols)
    trials = with_levels(trials, factors)
    rows = []
    for (run, _), frame in trials.groupby([RUN, R.DATASET], sort=True):
        expected = sorted((seeds or {}).get(run) or set(frame[R.SEED].dropna().astype(int)))
        if len(expected) < 2:
            continue
        for config, group in frame.groupby(factors, sort=False):
            have = set(group[R.SEED].astype(int))
            done = set(group.loc[group[R.STATUS] == R.COMPLETED, R.SEED].astype(int))
            absent = [s for s in expected if s not in have]
            not_done = [s for s in expected if s in have and s not in done]
            if absent or not_done:
                label = level_label(config if isinstance(config, tuple) else (config,))
                first = group.iloc[0]
                rows.append(
                    (
                        run,
                        first[R.EXPERIMENT],
                        first[R.DATASET],
                        label,
                        len(expected),
                        absent,
                        not_done,
                    )
                )
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values([RUN, "config"], kind="stable").reset_index(drop=True)
