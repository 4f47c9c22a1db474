"""The report's comparison of two levels of a factor: top models and paired trials."""

from __future__ import annotations

import math

import pandas as pd

from analysis import stats as S
from analysis.load import Results
from analysis.render import Block, Heading, Para, Table, safe_name
from analysis.report_options import ReportOptions, json_records
from analysis.tables import compare_top


def compare_blocks(
    res: Results, opts: ReportOptions, factor: str, a: str, b: str
) -> tuple[list[Block], dict]:
    """The section comparing level ``b`` of ``factor`` with ``a``, and its summary entry."""
    top = compare_top(res.trials, factor, a, b, across=opts.across)
    factors = [f for f in res.factors if f in res.trials.columns]
    paired = S.paired_by(
        res.trials,
        factor,
        a,
        b,
        factors=factors,
        across=opts.across,
        n_boot=opts.n_boot,
        seed=opts.seed,
    )
    name = safe_name(f"{factor}_{a}_vs_{b}")
    blocks = [
        Heading(f"{factor}: {b} vs {a}"),
        Para(
            f"Relative error reduction of the top `{b}` model over the top `{a}` model "
            "(top = best val IoU; its test IoU), error = 100 − IoU, "
            "reduction = (e_a − e_b) / e_a."
        ),
        Table(
            f"top_{name}",
            f"Top models: {factor} {a} vs {b}",
            top.set_index(opts.across),
            data=top,
        ),
        Para(
            f"Paired comparison: trials of `{a}` and `{b}` sharing the dataset, every "
            f"other factor and the seed; difference = {b} − {a} in IoU points; 95% CI "
            f"by bootstrap ({opts.n_boot} resamples, seed {opts.seed}); p from the "
            "two-sided Wilcoxon signed-rank test; win rate of "
            f"`{b}` (ties count ½)."
        ),
        Table(
            f"paired_{name}",
            f"Paired comparison: {factor} {b} − {a}",
            paired_shown(paired, opts.across),
            data=paired,
        ),
    ]
    entry = {
        "factor": factor,
        "a": a,
        "b": b,
        "top_models": json_records(top),
        "paired": json_records(paired),
    }
    return blocks, entry


def paired_shown(paired: pd.DataFrame, across: str) -> pd.DataFrame:
    """The paired comparison as the report shows it (signs, CIs, p, win rate)."""
    if paired.empty:
        return pd.DataFrame(columns=[across, "pairs"])
    shown = pd.DataFrame(
        {
            across: paired[across],
            "pairs": paired["n_pairs"],
            "mean diff": paired["mean_diff"].map(lambda v: f"{v:+.2f}"),
            "95% CI": [
                f"[{lo:+.2f}, {hi:+.2f}]"
                for lo, hi in zip(paired["ci_low"], paired["ci_high"], strict=True)
            ],
            "Wilcoxon p": paired["p_value"].map(
                lambda p: "" if not math.isfinite(p) else f"{p:.3g}"
            ),
            "win rate": paired["win_rate"].map(
                lambda w: "" if not math.isfinite(w) else f"{w:.0%}"
            ),
            "unpaired a/b": [
                f"{x}/{y}" for x, y in zip(paired["unpaired_a"], paired["unpaired_b"], strict=True)
            ],
        }
    )
    return shown.set_index(across)
