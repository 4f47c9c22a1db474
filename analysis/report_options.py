"""What a report shows: its options, their defaults from the runs, and JSON-ready values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from analysis import param_importance as I
from analysis import results as R
from analysis import stats as S
from analysis.load import RUN, Results
from analysis.tables import check_factors, ordered
from core.errors import ReportError

Compare = tuple[str, str, str]


@dataclass(frozen=True)
class ReportOptions:
    """How to cut the results. ``by``: one table per entry; an entry with several factors
    crosses them (rows = their combinations)."""

    by: tuple[tuple[str, ...], ...] = ()
    across: str = R.DATASET
    include_stopped: bool = False
    compare: tuple[Compare, ...] = ()
    accuracy_maps: bool = True
    max_curves: int = 300
    n_boot: int = S.N_BOOT
    importance_boot: int = I.N_BOOT
    seed: int = 0


def _varied(trials: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    return [f for f in factors if f in trials.columns and trials[f].nunique(dropna=False) > 1]


def resolve_options(res: Results, opts: ReportOptions) -> ReportOptions:
    """Fill defaults: ``by`` = every factor that varied; compare init imagenet vs micronet."""
    if opts.across not in res.trials.columns:
        check_factors(res.trials, [opts.across])
    by = opts.by
    if not by:
        varied = [f for f in _varied(res.trials, res.factors) if f != opts.across]
        if not varied:
            raise ReportError("no factor varied in these runs; pass --by FACTOR to group trials")
        by = tuple((f,) for f in varied)
    for group in by:
        check_factors(res.trials, group)
        if opts.across in group:
            raise ReportError(
                f"--by {'+'.join(group)} includes the --across column {opts.across!r}; "
                "tabulate another factor or pick another --across"
            )
    compare = opts.compare
    if not compare and "init" in res.trials.columns:
        levels = set(res.trials["init"].dropna().astype(str))
        if {"imagenet", "micronet"} <= levels:
            compare = (("init", "imagenet", "micronet"),)
    for factor, *levels in compare:
        _check_levels(res.trials, factor, levels)
    return ReportOptions(**{**opts.__dict__, "by": by, "compare": compare})


def _check_levels(trials: pd.DataFrame, factor: str, levels: Sequence[str]) -> None:
    check_factors(trials, [factor])
    known = ordered(trials[factor].dropna().astype(str))
    for level in levels:
        if str(level) not in known:
            raise ReportError(
                f"--compare: {factor} has no level {level!r}; levels: {', '.join(known)}"
            )


def run_rungs(res: Results, across: str) -> dict[str, list[int]]:
    """ASHA rungs per ``across`` value: ``run.json["rungs"]``, else where stopped trials ended."""
    out: dict[str, set[int]] = {}
    for run in res.runs:
        here = res.trials[res.trials[RUN] == run.index]
        rungs = run.rungs
        if rungs is None:
            stopped = here.loc[here[R.STATUS] == R.STOPPED, R.EPOCHS].dropna().astype(int)
            rungs = tuple(sorted(set(stopped)))[:10]
        for group in here[across].dropna().astype(str).unique():
            out.setdefault(group, set()).update(rungs)
    return {k: sorted(v) for k, v in out.items()}


def json_number(value: object) -> object:
    """JSON-ready number: NaN → None, floats rounded to 6 decimals, numpy scalars unboxed."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    return value


def json_records(frame: pd.DataFrame) -> list[dict]:
    return [{str(k): json_number(v) for k, v in row.items()} for row in frame.to_dict("records")]
