"""The verdict of a recommendation: which candidate, how strong the evidence, in words.

Evidence is ``strong`` when the 95 % bootstrap CI of the top candidate's test-IoU mean lies
entirely above the runner-up's; otherwise ``weak``, and the winner is the cheaper of the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from analysis.recommend import Ranked

Evidence = Literal["strong", "weak"]
Replicates = Literal["seeds", "folds"]  # what a configuration's confirm trials vary
MORE = {
    "seeds": "more seeds (--seeds) would sharpen the answer",
    "folds": "more folds (`microsweep data split ROOT --folds K`) would sharpen the answer",
}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}" if math.isfinite(value) else "n/a"


def ci_text(ci: Sequence[float | None]) -> str:
    """``[81.2, 84.0] %`` from a CI in fractions (``n/a`` when undefined)."""
    lo, hi = (math.nan if v is None else float(v) for v in ci)
    return f"[{_pct(lo)}, {_pct(hi)}] %" if math.isfinite(lo) and math.isfinite(hi) else "n/a"


def _cheaper(a: Ranked, b: Ranked) -> tuple[Ranked, str]:
    """The cheaper of two candidates (``a`` on a tie) and why, in words: its cost first."""
    if a.parameters and b.parameters:
        pick, other = (b, a) if b.parameters < a.parameters else (a, b)
        mp = f"{pick.parameters / 1e6:.1f} M vs {other.parameters / 1e6:.1f} M parameters"
        return pick, f"{mp} of {other.label}"
    if math.isfinite(a.epoch_s) and math.isfinite(b.epoch_s):
        pick, other = (b, a) if b.epoch_s < a.epoch_s else (a, b)
        seconds = f"{pick.epoch_s:.1f} s vs {other.epoch_s:.1f} s per trial-epoch"
        return pick, f"{seconds} of {other.label}"
    return a, "no cost measured, so the higher mean val IoU"


def judge(
    ranked: Sequence[Ranked], *, replicates: Replicates = "seeds"
) -> tuple[int, Evidence, str]:
    """The winner's index, the evidence and the verdict text for ranked candidates whose
    confirm trials vary ``replicates`` (seeds, or folds)."""
    top = ranked[0]
    if len(ranked) == 1:
        return (
            0,
            "weak",
            (
                f"Only one configuration was confirmed ({top.label}): nothing to compare it with; "
                "confirm more candidates (--top) for a ranking."
            ),
        )
    second = ranked[1]
    lo, hi = top.ci95[0], second.ci95[1]
    if math.isfinite(lo) and math.isfinite(hi) and lo > hi:
        return (
            0,
            "strong",
            (
                f"{top.label} is the best configuration: the 95 % CI of its test-IoU mean "
                f"{ci_text(top.ci95)} lies above the runner-up's ({second.label}, "
                f"{ci_text(second.ci95)}); P(best) = {top.p_best:.2f}."
            ),
        )
    if not (math.isfinite(lo) and math.isfinite(hi)):
        reason = "fewer than 2 confirm trials with a test IoU"
    elif second.ci95[0] > top.ci95[1]:
        reason = "the runner-up has the higher test IoU although it has the lower val IoU"
    else:
        reason = (
            f"the 95 % CIs of their test-IoU means overlap: {ci_text(top.ci95)} and "
            f"{ci_text(second.ci95)}"
        )
    pick, cost = _cheaper(top, second)
    n = min(len(top.trials), len(second.trials))
    verdict = (
        f"The evidence is weak: {top.label} and {second.label} cannot be told apart "
        f"({reason}; {n} confirm {replicates[:-1]}(s) each). Use the cheaper one, "
        f"{pick.label} ({cost}); {MORE[replicates]}."
    )
    return ranked.index(pick), "weak", verdict
