"""The report's "What mattered" section: :func:`analysis.param_importance.importance` per
``across`` value (datasets differ in what matters, and a dataset is no hyperparameter), as a
table, a figure and the summary's ``importance`` entry. A group that cannot be ranked gets one
line."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from analysis import figures as F
from analysis import param_importance as I
from analysis import results as R
from analysis.render import Block, Figure, Heading, Para, Table
from analysis.tables import ordered
from core.errors import ReportError

DEFAULT_EVALUATORS = ("fanova", "ped_anova")


def _cell(row: pd.Series) -> str:
    if pd.isna(row["ci_low"]):
        return f"{row['importance']:.2f}"
    return f"{row['importance']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _shown(tidy: pd.DataFrame, across: str, evaluators: Sequence[str]) -> pd.DataFrame:
    """Rows = factors (most important first, by the first evaluator of the first group);
    columns = evaluator (one group) or group · evaluator."""
    groups = list(dict.fromkeys(tidy[across]))
    first = tidy[(tidy[across] == groups[0]) & (tidy["evaluator"] == evaluators[0])]
    factors = list(dict.fromkeys([*first["factor"], *tidy["factor"]]))
    shown = pd.DataFrame(index=pd.Index(factors, name="factor"))
    for group in groups:
        for name in evaluators:
            here = tidy[(tidy[across] == group) & (tidy["evaluator"] == name)]
            label = I.LABELS.get(name, name)
            col = label if len(groups) == 1 else f"{group} · {label}"
            shown[col] = here.set_index("factor").apply(_cell, axis=1).reindex(factors)
    return shown.fillna("")


def _note(target: str, across: str, n_boot: int, seed: int, skipped: list[str]) -> Para:
    text = (
        f"Hyperparameter importance for {target} of **completed trials only** "
        "(ASHA-stopped trials ran a lower budget and are left out), per "
        f"{across}, from optuna's evaluators on the factors that varied: fANOVA (the share of "
        f"the variance of {target} a random forest attributes to each factor) and PED-ANOVA "
        "(how differently a factor's levels are spread among the top trials, the best 10% "
        "but at least 5, than among all). Each evaluator's importances sum to 1. "
        f"[low, high]: 95% bootstrap interval over trials ({n_boot} resamples, seed {seed})."
    )
    if skipped:
        text += " Not computed: " + "; ".join(skipped) + "."
    return Para(text)


def importance_blocks(
    trials: pd.DataFrame,
    *,
    across: str = R.DATASET,
    target: str = R.TEST_IOU,
    factors: Sequence[str] | None = None,
    evaluators: Sequence[str] = DEFAULT_EVALUATORS,
    n_boot: int = I.N_BOOT,
    seed: int = 0,
) -> tuple[list[Block], dict]:
    """The section's blocks and its ``summary.json`` entry: ``rows`` holds ``across`` and
    :data:`analysis.param_importance.COLUMNS`; ``not_computed`` maps a group to its reason."""
    usable, skipped = I.available_evaluators(evaluators)
    summary: dict = {
        "target": target,
        "evaluators": usable,
        "n_boot": n_boot,
        "seed": seed,
        "ci_level": I.CI_LEVEL,
        "rows": pd.DataFrame(columns=[across, *I.COLUMNS]),  # the report makes it JSON
        "not_computed": {},
        "skipped_evaluators": skipped,
    }
    blocks: list[Block] = [Heading("What mattered"), _note(target, across, n_boot, seed, skipped)]
    frames = []
    for group in ordered(trials[across].dropna()) if usable else []:
        here = trials[trials[across] == group]
        try:
            got = I.importance(
                here, target, factors=factors, evaluators=usable, n_boot=n_boot, seed=seed
            )
        except ReportError as err:
            summary["not_computed"][str(group)] = str(err)
            blocks.append(Para(f"{group}: {err}."))
            continue
        frames.append(got.assign(**{across: group})[[across, *I.COLUMNS]])
    if not frames:
        return blocks, summary
    tidy = pd.concat(frames, ignore_index=True)
    summary["rows"] = tidy
    blocks += [
        Table(
            "importance",
            f"Hyperparameter importance for {target} (95% bootstrap interval)",
            _shown(tidy, across, usable),
            data=tidy,
        ),
        Figure(
            "importance",
            "Hyperparameter importance per factor (bars) with 95% bootstrap intervals",
            F.importance_figure(tidy, across=across, labels=I.LABELS),
        ),
    ]
    return blocks, summary
