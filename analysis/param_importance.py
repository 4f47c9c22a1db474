"""Hyperparameter importance of a sweep: optuna's fANOVA and PED-ANOVA on completed trials.

Only trials that ran their full budget (status ``completed``, finite target) count: an
ASHA-stopped trial has no test IoU, and its val IoU at an early rung measures something else
(low fidelity). The trials become an in-memory optuna study (``optuna.trial.create_trial`` +
``study.add_trials``), and optuna's own evaluators score it, so the numbers are exactly
``optuna.importance.get_param_importances(study, evaluator=...)`` (normalised to sum 1 per
evaluator). Confidence intervals: percentile bootstrap over trials (rows resampled with
replacement, seeded), each resample scored by the same evaluators.

How factors become optuna distributions (:func:`distribution`):

- strings, booleans, mixed values and factors with a missing level: ``CategoricalDistribution``;
- numbers with at most :data:`MAX_LEVELS` distinct values (what a grid sweep runs, e.g.
  ``lr: [1.0e-4, 3.0e-4, 1.0e-3]``): ``CategoricalDistribution`` of those numbers. As a
  ``FloatDistribution`` fANOVA would average its forest over the whole interval, weighting the
  untried gaps between levels by their width, and PED-ANOVA would smooth a kernel density over
  a 50-point grid of values never run; a categorical level is one cell of what was measured.
  The price, lost order, is small with this few levels;
- numbers with more distinct values (random or TPE sampling): ``IntDistribution`` for
  integers, else ``FloatDistribution`` over the values seen, logarithmic when they are positive
  and span at least two decades.

Example::

    from analysis import importance, load_runs
    trials = load_runs(["runs/super1"])
    importance(trials, n_boot=200)   # factor, evaluator, importance, ci_low, ci_high, n_trials
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.importance import (
    BaseImportanceEvaluator,
    FanovaImportanceEvaluator,
    PedAnovaImportanceEvaluator,
)

from analysis import results as R
from analysis.tables import UNSET, factor_columns, ordered
from core.errors import ReportError
from core.registry import Registry

N_BOOT = 100  # resamples; 100 took 14-18 s on 2 busy cores (bench/importance_time.py)
MIN_TRIALS = 10  # completed trials below which importances are not worth reading
MAX_LEVELS = 10  # numeric factors with at most this many values are categorical (see above)
PED_TOP_TRIALS = 5  # optuna: PED-ANOVA wants at least 5 trials above its target quantile
COLUMNS = ("factor", "evaluator", "importance", "ci_low", "ci_high", "n_trials")
CI_LEVEL = 0.95

# name -> factory(number of trials, seed) -> a fresh optuna evaluator
EvaluatorFactory = Callable[[int, int], BaseImportanceEvaluator]
EVALUATORS: Registry[EvaluatorFactory] = Registry("importance evaluator")
LABELS = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}


@EVALUATORS.register("fanova")
def _fanova(n_trials: int, seed: int) -> BaseImportanceEvaluator:
    if importlib.util.find_spec("sklearn") is None:  # optuna's fANOVA fits a sklearn forest
        raise ReportError(
            "the fANOVA evaluator needs scikit-learn, which is not installed; "
            "pip install scikit-learn, or use evaluators=('ped_anova',)"
        )
    return FanovaImportanceEvaluator(seed=seed)


@EVALUATORS.register("ped_anova")
def _ped_anova(n_trials: int, seed: int) -> BaseImportanceEvaluator:
    return PedAnovaImportanceEvaluator(target_quantile=ped_quantile(n_trials))


def ped_quantile(n_trials: int) -> float:
    """PED-ANOVA's top quantile: optuna's 0.1, raised so that it holds at least 5 trials
    (optuna's advice), at most 0.5 (the top half against all)."""
    return min(0.5, max(0.1, PED_TOP_TRIALS / max(1, n_trials)))


def available_evaluators(names: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(usable, reasons)``: the evaluators of ``names`` that can run here, and one line for
    each that cannot (fANOVA without scikit-learn)."""
    usable, reasons = [], []
    for name in names:
        try:
            EVALUATORS.get(name)(MIN_TRIALS, 0)
        except ReportError as err:
            reasons.append(str(err).split(";")[0])
        else:
            usable.append(name)
    return usable, reasons


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def distribution(values: pd.Series) -> BaseDistribution:
    """The optuna distribution of one factor's column (rules in the module docstring)."""
    if values.isna().any() or not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        levels = ordered(UNSET if pd.isna(v) else _plain(v) for v in values)
        return CategoricalDistribution(levels)
    levels = ordered(_plain(v) for v in values)
    if len(levels) <= MAX_LEVELS:
        return CategoricalDistribution(levels)
    low, high = float(levels[0]), float(levels[-1])
    if all(float(v).is_integer() for v in levels):
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high, log=low > 0 and high / low >= 100)


def usable_trials(trials: pd.DataFrame, target: str = R.TEST_IOU) -> pd.DataFrame:
    """Completed trials with a finite ``target``: the only ones importances are computed on."""
    if target not in trials.columns:
        raise ReportError(f"unknown importance target {target!r}: the trials have no such column")
    value = pd.to_numeric(trials[target], errors="coerce").astype(float)
    keep = (trials[R.STATUS] == R.COMPLETED) & np.isfinite(value)
    return trials[keep]


def _param_value(value: object, dist: BaseDistribution) -> object:
    if isinstance(dist, CategoricalDistribution):
        return UNSET if pd.isna(value) else _plain(value)
    return float(value) if isinstance(dist, FloatDistribution) else int(value)


def _frozen_trials(
    done: pd.DataFrame, target: str, dists: dict[str, BaseDistribution]
) -> list[optuna.trial.FrozenTrial]:
    out = []
    for row in done[[*dists, target]].itertuples(index=False, name=None):
        params = {f: _param_value(v, dists[f]) for f, v in zip(dists, row, strict=False)}
        out.append(
            optuna.trial.create_trial(params=params, distributions=dists, value=float(row[-1]))
        )
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's study-created log lines and small-sample warnings stay off the terminal."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _study(frozen: Sequence[optuna.trial.FrozenTrial], direction: str) -> optuna.study.Study:
    with _quiet():
        study = optuna.create_study(direction=direction)
        study.add_trials(frozen)
    return study


def importance_study(
    trials: pd.DataFrame,
    target: str = R.TEST_IOU,
    *,
    factors: Sequence[str] | None = None,
    direction: Literal["maximize", "minimize"] = "maximize",
) -> optuna.study.Study:
    """The in-memory optuna study :func:`importance` scores: one COMPLETE trial per completed
    trial with a finite ``target``, params = the factors that varied among them. Use it with
    optuna's own tools, e.g. ``optuna.visualization.plot_param_importances(study)``."""
    done, dists = _prepare(trials, target, factors)
    return _study(_frozen_trials(done, target, dists), direction)


def _prepare(
    trials: pd.DataFrame, target: str, factors: Sequence[str] | None
) -> tuple[pd.DataFrame, dict[str, BaseDistribution]]:
    done = usable_trials(trials, target)
    names = list(factors) if factors is not None else factor_columns(trials)
    missing = [f for f in names if f not in trials.columns]
    if missing:
        raise ReportError(f"unknown factor {missing[0]!r}; choose from: {', '.join(names)}")
    varied = [f for f in names if f != target and done[f].nunique(dropna=False) > 1]
    if len(done) < MIN_TRIALS:
        raise ReportError(
            f"too few completed trials to rank factors: {len(done)} with a {target}, at least "
            f"{MIN_TRIALS} needed (ASHA-stopped, diverged and errored trials do not count)"
        )
    if len(varied) < 2:
        which = f"only {varied[0]!r}" if varied else "none"
        raise ReportError(
            f"importance needs at least 2 factors that varied among the {len(done)} completed "
            f"trials, but {which} did"
        )
    return done, {f: distribution(done[f]) for f in varied}


def _scores(
    study: optuna.study.Study, evaluators: Sequence[str], n_trials: int, seed: int
) -> dict[str, dict[str, float]]:
    out = {}
    with _quiet():
        for name in evaluators:
            evaluator = EVALUATORS.get(name)(n_trials, seed)
            got = optuna.importance.get_param_importances(study, evaluator=evaluator)
            out[name] = {k: float(v) for k, v in got.items()}
    return out


def importance(
    trials: pd.DataFrame,
    target: str = R.TEST_IOU,
    *,
    factors: Sequence[str] | None = None,
    evaluators: Sequence[str] = ("fanova", "ped_anova"),
    direction: Literal["maximize", "minimize"] = "maximize",
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Importance of each factor that varied, by each evaluator, with bootstrap CIs.

    Returns one row per (evaluator, factor): ``importance`` (optuna's normalised value, the
    evaluators' scores sum to 1), ``ci_low`` / ``ci_high`` (95% percentile bootstrap over
    trials, ``n_boot`` resamples, NaN when ``n_boot`` is 0) and ``n_trials`` (completed trials
    used). Rows are sorted by evaluator, then importance (highest first).
    ``factors``: default every factor column of ``trials``. Raises :class:`ReportError` (one
    line) with fewer than :data:`MIN_TRIALS` completed trials or fewer than 2 varied factors.

    Example: ``importance(load_runs(["runs/super1"]), evaluators=("ped_anova",))``.
    """
    if n_boot < 0:
        raise ReportError(f"`n_boot` must be >= 0, but got {n_boot}")
    for name in evaluators:
        EVALUATORS.get(name)  # unknown names fail before any work
    done, dists = _prepare(trials, target, factors)
    frozen = _frozen_trials(done, target, dists)
    n = len(frozen)
    point = _scores(_study(frozen, direction), evaluators, n, seed)
    rng = np.random.default_rng(seed)
    boots: dict[str, dict[str, list[float]]] = {e: {f: [] for f in dists} for e in evaluators}
    for _ in range(n_boot):
        sample = [frozen[i] for i in rng.integers(0, n, size=n)]
        for name, got in _scores(_study(sample, direction), evaluators, n, seed).items():
            for factor in dists:
                boots[name][factor].append(got.get(factor, 0.0))
    tail = (1 - CI_LEVEL) / 2 * 100
    rows = []
    for name in evaluators:
        for factor in dists:
            draws = boots[name][factor]
            low, high = np.percentile(draws, [tail, 100 - tail]) if draws else (math.nan,) * 2
            rows.append((factor, name, point[name][factor], float(low), float(high), n))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    rank = {e: i for i, e in enumerate(evaluators)}
    frame = frame.assign(_e=frame["evaluator"].map(rank))
    frame = frame.sort_values(["_e", "importance", "factor"], ascending=[True, False, True])
    return frame.drop(columns="_e").reset_index(drop=True)
