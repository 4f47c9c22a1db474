"""Which configuration to use: candidates of the search stage, ranked on their confirm trials.

``microsweep recommend`` runs a sweep (stage ``search``), retrains the top configurations from
scratch with new seeds (stage ``confirm``, the ``stage`` column of ``trials.parquet``), then
ranks them here. Pure functions of the trials table; no Ray, no training.

Example::

    trials = load_runs(["runs/new-material"])
    factors = ["encoder", "decoder", "init"]
    picks = candidates(trials, factors, top=3)         # what the confirm stage retrains
    rec = rank(trials, factors, n_boot=2000, seed=0)   # after the confirm stage
    write_recommendation("runs/new-material", rec)     # RUN/recommendation.json
    print(rec.verdict)

A *configuration* is the values of every factor except ``seed`` (and ``fold``). The confirm
trials of a configuration are its *replicates*: one per new seed, or one per fold when the
confirm trials have a ``fold`` column (``recommend --folds``); everything below works the same
over either, and the paired difference pairs trials by seed or by fold. Ranking: candidates
ordered by the mean val IoU of their completed confirm trials. **P(best)**: the share of
``n_boot`` bootstrap resamples (each candidate's confirm replicates resampled with replacement,
all candidates at once) in which a candidate has the highest mean val IoU; ties share the
resample, so the values sum to 1. **Evidence** is ``strong`` when the 95 % bootstrap CI of the
top candidate's test-IoU mean lies entirely above the runner-up's; else ``weak``, and the
winner is the cheaper of the two (see :func:`rank`). The test IoU decides the evidence because
val IoU is what the search selected on (a selected val score is optimistic), while the test
split was never used for any choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import results as R
from analysis.stats import bootstrap_ci
from analysis.status import show_value
from analysis.verdict import Evidence, Replicates, judge
from core import storage
from core.errors import ReportError

SCHEMA = 1
LEVEL = 0.95
ENDED = (R.COMPLETED, R.STOPPED)  # search trials whose best val IoU counts for candidates
UNITS = {"seeds": R.SEED, "folds": R.FOLD}  # replicates -> the column that pairs them


@dataclass(frozen=True)
class Candidate:
    """A configuration picked from the search stage (what the confirm stage retrains)."""

    config: dict[str, object]
    best_val_iou: float  # best val IoU of its search trials
    trials: tuple[str, ...]  # its search trials that ended completed or stopped


@dataclass(frozen=True)
class Ranked:
    """One candidate's confirm-stage statistics (IoU as fractions) and its cost."""

    label: str
    config: dict[str, object]
    trials: tuple[str, ...]  # confirm trials the statistics use
    seeds: tuple[int, ...]
    best_trial: str  # the confirm trial with the best val IoU (what export takes)
    val_iou: tuple[float, float]  # mean, sample std (NaN with one trial)
    test_iou: tuple[float, float]
    ci95: tuple[float, float]  # bootstrap CI of the test-IoU mean (NaN with < 2 trials)
    p_best: float
    class_iou: dict[str, dict[str, float]]  # split -> class -> mean IoU
    trial_epochs: dict[str, int]  # stage -> epochs trained by every trial of the config
    cost_hours: dict[str, float]  # "cpu" / "gpu" -> resource-hours (requested × wall time)
    epoch_s: float  # wall seconds per trial-epoch over both stages
    parameters: int | None = None
    paired_to_next: dict | None = None  # test IoU, this − next-ranked, on shared seeds/folds
    failed: tuple[str, ...] = ()  # its confirm trials that did not complete (not used)
    folds: tuple[int, ...] = ()  # the folds of its confirm trials (recommend --folds)


@dataclass(frozen=True)
class Recommendation:
    """The ranked candidates (best mean val IoU first), the winner and the verdict."""

    candidates: tuple[Ranked, ...]
    winner: int  # index into candidates
    evidence: Evidence
    verdict: str
    n_boot: int
    seed: int
    total: dict = field(default_factory=dict)  # the cost of every trial in the table
    replicates: Replicates = "seeds"  # what the confirm trials of a configuration vary

    def to_json(self) -> dict:
        """The ``recommendation.json`` document (schema in docs/contracts.md)."""
        win = self.candidates[self.winner]
        return {
            "schema": SCHEMA,
            "metric": "mean val IoU of completed confirm trials (IoU as fractions)",
            "winner": {
                "label": win.label,
                "config": _jsonable(win.config),
                "rank": self.winner + 1,
                "best_trial": win.best_trial,
                "trials": list(win.trials),
            },
            "evidence": self.evidence,
            "verdict": self.verdict,
            "replicates": self.replicates,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "level": LEVEL,
            "candidates": [_candidate_json(i, c) for i, c in enumerate(self.candidates)],
            "total": _jsonable(self.total),
        }


# --- configurations ------------------------------------------------------------------------
def config_factors(trials: pd.DataFrame, factors: Sequence[str]) -> list[str]:
    """The factors (present in ``trials``, never ``seed``/``fold``) that make a configuration."""
    return [f for f in dict.fromkeys(factors) if f not in UNITS.values() and f in trials.columns]


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _keys(trials: pd.DataFrame, names: Sequence[str]) -> pd.Series:
    """One hashable key per trial: its configuration's values, NaN/None as None."""
    rows = trials[list(names)].itertuples(index=False, name=None)
    return pd.Series([tuple(_plain(v) for v in row) for row in rows], index=trials.index)


def stage_of(trials: pd.DataFrame) -> pd.Series:
    """Each trial's stage; trials of runs without a ``stage`` column are ``search``."""
    if R.STAGE not in trials.columns:
        return pd.Series(R.SEARCH, index=trials.index)
    return trials[R.STAGE].where(trials[R.STAGE].notna(), R.SEARCH).astype(str)


def candidates(trials: pd.DataFrame, factors: Sequence[str], *, top: int = 3) -> list[Candidate]:
    """The ``top`` configurations of the search stage by best val IoU.

    Every search trial that ended ``completed`` or ``stopped`` with a finite val IoU counts;
    ties go to the configuration whose first trial name sorts first.
    """
    if top < 1:
        raise ReportError(f"top must be >= 1, but got {top}")
    names = config_factors(trials, factors)
    if not names:
        raise ReportError("no factor in the trials table; a configuration needs one")
    val = trials[R.VAL_IOU].astype(float)
    ok = trials[(stage_of(trials) == R.SEARCH) & trials[R.STATUS].isin(ENDED) & np.isfinite(val)]
    if ok.empty:
        raise ReportError(
            "no search trial completed or was stopped with a val IoU; nothing to rank"
        )
    ok = ok.assign(_key=_keys(ok, names)).sort_values(
        [R.VAL_IOU, R.TRIAL], ascending=[False, True], kind="stable"
    )
    out = []
    for key, group in ok.groupby("_key", sort=False):
        out.append(
            Candidate(
                config=dict(zip(names, key, strict=True)),
                best_val_iou=float(group[R.VAL_IOU].iloc[0]),
                trials=tuple(sorted(group[R.TRIAL])),
            )
        )
    return out[:top]


def _labels(configs: Sequence[Mapping[str, object]]) -> list[str]:
    """``encoder=resnet34, decoder=Unet`` naming only factors that differ between configs."""
    names = list(configs[0]) if configs else []
    varied = [n for n in names if len({repr(c[n]) for c in configs}) > 1] or names
    return [", ".join(f"{n}={show_value(c[n])}" for n in varied) for c in configs]


# --- ranking --------------------------------------------------------------------------------
def _confirmed(trials: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    val = trials[R.VAL_IOU].astype(float)
    ok = trials[(stage_of(trials) == R.CONFIRM) & (trials[R.STATUS] == R.COMPLETED)]
    ok = ok[np.isfinite(val.loc[ok.index])]
    if ok.empty:
        raise ReportError(
            "no completed confirm trial (stage 'confirm') in these trials; "
            "run the confirm stage (microsweep recommend) first"
        )
    return ok.assign(_key=_keys(ok, names)).sort_values(R.TRIAL, kind="stable")


def replicates_of(confirmed: pd.DataFrame) -> Replicates:
    """``folds`` when confirm trials carry a fold (``recommend --folds``), else ``seeds``."""
    has_fold = R.FOLD in confirmed.columns and bool(confirmed[R.FOLD].notna().any())
    return "folds" if has_fold else "seeds"


def p_best(values: Sequence[np.ndarray], *, n_boot: int, seed: int) -> np.ndarray:
    """Share of bootstrap resamples in which each group has the highest mean (ties shared).

    >>> p_best([np.array([0.8, 0.82]), np.array([0.7, 0.71])], n_boot=1000, seed=0)
    array([1., 0.])
    """
    rng = np.random.default_rng(seed)
    means = np.empty((n_boot, len(values)))
    for j, vals in enumerate(values):
        idx = rng.integers(0, len(vals), size=(n_boot, len(vals)))
        means[:, j] = np.asarray(vals, dtype=float)[idx].mean(axis=1)
    # Round so that resamples equal up to float noise count as ties.
    means = np.round(means, 12)
    first = means == means.max(axis=1, keepdims=True)
    return (first / first.sum(axis=1, keepdims=True)).mean(axis=0)


def _mean_std(values: pd.Series) -> tuple[float, float]:
    arr = values.astype(float).to_numpy()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def _class_iou(group: pd.DataFrame) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for col in group.columns:
        if isinstance(col, str) and col.startswith(R.CLASS_IOU_PREFIX):
            split, _, cls = col[len(R.CLASS_IOU_PREFIX) :].lstrip(":").partition(":")
            mean = _mean_std(group[col])[0]
            if math.isfinite(mean):
                out.setdefault(split, {})[cls] = mean
    return out


def _stats(group: pd.DataFrame, *, n_boot: int, seed: int) -> dict:
    """The confirm-trial statistics of one configuration (fields of :class:`Ranked`)."""
    test = group[R.TEST_IOU].astype(float)
    finite = test[np.isfinite(test)].to_numpy()
    ci = bootstrap_ci(finite, n_boot=n_boot, seed=seed) if finite.size > 1 else (math.nan,) * 2
    best = group.sort_values([R.VAL_IOU, R.TRIAL], ascending=[False, True], kind="stable")
    folds = group[R.FOLD] if R.FOLD in group.columns else ()
    return {
        "trials": tuple(group[R.TRIAL]),
        "seeds": tuple(int(s) for s in group[R.SEED]),
        "folds": tuple(int(f) for f in folds if pd.notna(f)),
        "best_trial": str(best[R.TRIAL].iloc[0]),
        "val_iou": _mean_std(group[R.VAL_IOU]),
        "test_iou": _mean_std(test),
        "ci95": (float(ci[0]), float(ci[1])),
        "class_iou": _class_iou(group),
    }


def _cost(spent: pd.DataFrame) -> dict:
    """Trial-epochs per stage, CPU/GPU-hours and seconds per trial-epoch of these trials."""

    def col(name: str) -> pd.Series:
        if name not in spent.columns:
            return pd.Series(0.0, index=spent.index)
        return spent[name].astype(float).fillna(0.0)

    epochs, wall = col(R.EPOCHS), col(R.WALL_S)
    stages = stage_of(spent)
    by_stage = {s: int(epochs[stages == s].sum()) for s in R.STAGES}
    hours = {r: float((wall * col(c)).sum() / 3600) for r, c in (("cpu", R.CPU), ("gpu", R.GPU))}
    total = epochs.sum()
    epoch_s = float(wall.sum() / total) if total else math.nan
    return {"trial_epochs": by_stage, "cost_hours": hours, "epoch_s": epoch_s}


def _failed(spent: pd.DataFrame, used: pd.DataFrame) -> tuple[str, ...]:
    confirm = spent[stage_of(spent) == R.CONFIRM]
    return tuple(sorted(set(confirm[R.TRIAL]) - set(used[R.TRIAL])))


def _paired(a: pd.DataFrame, b: pd.DataFrame, *, by: str, n_boot: int, seed: int) -> dict:
    """Test IoU of ``a`` − ``b`` on the seeds (or folds: ``by``) both have, one trial each."""
    cols = [by, R.TEST_IOU]
    pairs = a[cols].drop_duplicates(by).merge(b[cols].drop_duplicates(by), on=by)
    diffs = (pairs[f"{R.TEST_IOU}_x"] - pairs[f"{R.TEST_IOU}_y"]).astype(float).to_numpy()
    diffs = diffs[np.isfinite(diffs)]
    low, high = bootstrap_ci(diffs, n_boot=n_boot, seed=seed) if diffs.size > 1 else (math.nan,) * 2
    return {
        "n_pairs": int(diffs.size),
        "mean_diff": float(diffs.mean()) if diffs.size else math.nan,
        "ci95": [low, high],
    }


def rank(
    trials: pd.DataFrame,
    factors: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
    parameters: Callable[[Mapping[str, object]], int | None] | None = None,
) -> Recommendation:
    """Rank every configuration that has completed confirm trials (see the module docstring).

    Cost counts every trial of a configuration in both stages, whatever its status. When the
    evidence is weak the winner is the cheaper of the top two: fewer ``parameters(config)``
    when that callable is given for both, else fewer wall seconds per trial-epoch.
    """
    if n_boot < 1:
        raise ReportError(f"n_boot must be >= 1, but got {n_boot}")
    names = config_factors(trials, factors)
    if not names:
        raise ReportError("no factor in the trials table; a configuration needs one")
    confirmed = _confirmed(trials, names)
    replicates = replicates_of(confirmed)
    keys_all = _keys(trials, names)
    groups = sorted(
        confirmed.groupby("_key", sort=False),
        key=lambda kv: (-kv[1][R.VAL_IOU].astype(float).mean(), repr(kv[0])),
    )
    configs = [dict(zip(names, key, strict=True)) for key, _ in groups]
    labels = _labels(configs)
    shares = p_best(
        [g[R.VAL_IOU].astype(float).to_numpy() for _, g in groups], n_boot=n_boot, seed=seed
    )
    ranked = []
    for i, ((key, group), config) in enumerate(zip(groups, configs, strict=True)):
        mine = keys_all.map(key.__eq__).astype(bool)  # `==` would compare a tuple elementwise
        paired = None
        if i + 1 < len(groups):
            diff = _paired(group, groups[i + 1][1], by=UNITS[replicates], n_boot=n_boot, seed=seed)
            paired = {"next": labels[i + 1], **diff}
        ranked.append(
            Ranked(
                label=labels[i],
                config=config,
                p_best=float(shares[i]),
                parameters=parameters(config) if parameters else None,
                paired_to_next=paired,
                **_stats(group, n_boot=n_boot, seed=seed),
                failed=_failed(trials[mine], group),
                **_cost(trials[mine]),
            )
        )
    winner, evidence, verdict = judge(ranked, replicates=replicates)
    total = _cost(trials)
    total["trial_epochs"] = sum(total["trial_epochs"].values())
    total["trials"] = len(trials)
    return Recommendation(tuple(ranked), winner, evidence, verdict, n_boot, seed, total, replicates)


# --- recommendation.json --------------------------------------------------------------------
def _jsonable(value: object) -> object:
    """Plain JSON values: NaN → None, floats rounded to 6 decimals, numpy scalars unboxed."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    value = _plain(value)
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    return value


def _candidate_json(index: int, c: Ranked) -> dict:
    return _jsonable(
        {
            "rank": index + 1,
            "label": c.label,
            "config": c.config,
            "trials": c.trials,
            "seeds": c.seeds,
            "folds": c.folds,
            "best_trial": c.best_trial,
            "val_iou": {"mean": c.val_iou[0], "std": c.val_iou[1]},
            "test_iou": {"mean": c.test_iou[0], "std": c.test_iou[1]},
            "ci95": c.ci95,
            "p_best": c.p_best,
            "class_iou": c.class_iou,
            "trial_epochs": sum(c.trial_epochs.values()),
            "trial_epochs_by_stage": c.trial_epochs,
            "cost_hours": c.cost_hours,
            "epoch_s": c.epoch_s,
            "parameters": c.parameters,
            "paired_to_next": c.paired_to_next,
            "failed_trials": c.failed,
        }
    )  # type: ignore[return-value]


def write_recommendation(run: str | storage.Location, rec: Recommendation) -> storage.Location:
    """Write ``RUN/recommendation.json`` atomically and return its location."""
    path = storage.Location.parse(run) / R.RECOMMENDATION_FILE
    storage.write_json(path, rec.to_json())
    return path


def read_recommendation(run: str | storage.Location) -> dict | None:
    """``RUN/recommendation.json`` as written by :func:`write_recommendation`, or None."""
    from analysis.load import _read_json  # the one reader of our JSON files

    path = storage.Location.parse(run) / R.RECOMMENDATION_FILE
    return _read_json(path) if path.is_file() else None
