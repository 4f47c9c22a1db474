"""Paired comparisons of two levels of a factor (pure functions of tables, no I/O).

Trials of level ``a`` and level ``b`` pair up when they share the dataset, every other factor
and the seed. The difference is ``b − a`` in IoU percentage points (test IoU of completed
trials). Reported: number of pairs, mean difference with a percentile-bootstrap 95% CI (seeded,
so the same tables give the same interval), the Wilcoxon signed-rank p-value (two-sided) and the
win rate of ``b`` (ties count one half). Trials without a partner are counted, not used.

Example::

    paired_comparison(trials, "init", "imagenet", "micronet", factors=["init", "decoder"])
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis import results as R
from analysis.load import RUN
from analysis.tables import PERCENT, check_factors, with_levels
from core.errors import ReportError

N_BOOT = 10_000
_BOOT_CELLS = 4_000_000  # resample indices drawn per chunk: bounds memory at ~32 MB


@dataclass(frozen=True)
class Paired:
    """The outcome of one paired comparison (differences are b − a, percentage points)."""

    factor: str
    a: str
    b: str
    n_pairs: int
    mean_diff: float
    ci_low: float
    ci_high: float
    p_value: float
    win_rate: float
    unpaired_a: int
    unpaired_b: int

    def as_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(
    diffs: np.ndarray, *, n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``diffs``, vectorised in bounded chunks."""
    diffs = np.asarray(diffs, dtype=float)
    n = diffs.size
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOT_CELLS // n)
    means = np.empty(n_boot)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_p(diffs: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is zero."""
    diffs = np.asarray(diffs, dtype=float)
    if diffs.size == 0:
        return math.nan
    if np.all(diffs == 0):
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small-sample notes from scipy
        try:
            return float(sps.wilcoxon(diffs).pvalue)
        except ValueError:
            return math.nan


def _values(trials: pd.DataFrame, factor: str, level: str, key: list[str]) -> pd.DataFrame:
    ok = trials[
        (trials[R.STATUS] == R.COMPLETED)
        & (trials[factor].astype(str) == str(level))
        & np.isfinite(trials[R.TEST_IOU].astype(float))
    ].sort_values([RUN, R.TRIAL])
    return ok[[*key, R.TEST_IOU]]


def pair_trials(
    trials: pd.DataFrame, factor: str, a: object, b: object, *, factors: Sequence[str]
) -> tuple[pd.DataFrame, int, int]:
    """Matched pairs (columns ``a``, ``b`` in percent) and the unpaired counts of a and b.

    A configuration repeated with the same seed (e.g. the same sweep run twice) pairs once;
    the duplicates count as unpaired.
    """
    check_factors(trials, [factor])
    others = [f for f in factors if f != factor and f != R.SEED and f in trials.columns]
    key = [R.DATASET, *others, R.SEED]
    trials = with_levels(trials, [*others, R.DATASET])
    va, vb = (_values(trials, factor, lvl, key) for lvl in (a, b))
    if va.empty and vb.empty:
        raise ReportError(
            f"no completed trials with {factor}={a!r} or {factor}={b!r}; "
            f"check the levels in the report's tables"
        )
    ua, ub = va.drop_duplicates(key), vb.drop_duplicates(key)
    pairs = ua.merge(ub, on=key, suffixes=("_a", "_b"))
    pairs = pairs.rename(columns={f"{R.TEST_IOU}_a": "a", f"{R.TEST_IOU}_b": "b"})
    pairs[["a", "b"]] = pairs[["a", "b"]].astype(float) * PERCENT
    return pairs, len(va) - len(pairs), len(vb) - len(pairs)


def paired_comparison(
    trials: pd.DataFrame,
    factor: str,
    a: object,
    b: object,
    *,
    factors: Sequence[str],
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Paired:
    """Compare level ``b`` against level ``a`` of ``factor`` on matched trials."""
    pairs, un_a, un_b = pair_trials(trials, factor, a, b, factors=factors)
    diffs = (pairs["b"] - pairs["a"]).to_numpy(dtype=float)
    n = diffs.size
    low, high = bootstrap_ci(diffs, n_boot=n_boot, seed=seed)
    wins = float(np.sum(diffs > 0) + 0.5 * np.sum(diffs == 0)) / n if n else math.nan
    return Paired(
        factor=factor,
        a=str(a),
        b=str(b),
        n_pairs=n,
        mean_diff=float(diffs.mean()) if n else math.nan,
        ci_low=low,
        ci_high=high,
        p_value=wilcoxon_p(diffs),
        win_rate=wins,
        unpaired_a=un_a,
        unpaired_b=un_b,
    )


def paired_by(
    trials: pd.DataFrame,
    factor: str,
    a: object,
    b: object,
    *,
    factors: Sequence[str],
    across: str = R.DATASET,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`paired_comparison` per ``across`` value plus one row ``(all)`` pooling them."""
    rows = []
    groups = sorted(trials[across].dropna().astype(str).unique())
    for name in [*groups, "(all)"]:
        part = trials if name == "(all)" else trials[trials[across].astype(str) == name]
        try:
            res = paired_comparison(part, factor, a, b, factors=factors, n_boot=n_boot, seed=seed)
        except ReportError:
            continue  # neither level ran on this dataset
        rows.append({across: name, **res.as_dict()})
    return pd.DataFrame(rows)
