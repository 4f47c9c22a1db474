"""The simulation's figure and report section (markdown), from :mod:`analysis.simulation`'s
summary table; written by ``microsweep simulate`` next to ``simulation.parquet``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from analysis import simulation as S
from analysis.figures import _new, to_png


def figure(summary: pd.DataFrame) -> bytes:
    """Best-IoU ratio to FIFO (mean, and worst 5 % of orders) against the trial-epochs ratio."""
    fig = _new(6.0, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    rows = summary[summary[S.PATH] == "event"]
    ax.scatter(rows["epochs_ratio"], rows["best_ratio_mean"], label="mean over orders")
    ax.scatter(rows["epochs_ratio"], rows["best_ratio_worst5"], marker="v", label="worst 5 %")
    for _, row in rows.iterrows():
        ax.annotate(row[S.SETTING], (row["epochs_ratio"], row["best_ratio_worst5"]), fontsize=7)
    ax.axhline(0.98, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("trial-epochs / FIFO")
    ax.set_ylabel("best val IoU / FIFO")
    ax.legend(fontsize=8)
    return to_png(fig)


def _table(summary: pd.DataFrame) -> list[str]:
    lines = [
        "| setting | path | orders | best/FIFO mean | best/FIFO worst 5 % | trial-epochs/FIFO "
        "| wall h | GPU util |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in summary.iterrows():
        lines.append(
            f"| {r[S.SETTING]} | {r[S.PATH]} | {r['orders']} | {r['best_ratio_mean']:.3f} "
            f"| {r['best_ratio_worst5']:.3f} | {r['epochs_ratio']:.3f} | {r['wall_h']:.2f} "
            f"| {r['gpu_util']:.2f} |"
        )
    return lines


def section(
    summary: pd.DataFrame,
    *,
    rho: Mapping[int, float],
    meta: Mapping[str, Any],
    recommended: pd.Series | None,
    ray_lines: Sequence[str] = (),
) -> str:
    """The markdown report section ("Simulated schedulers")."""
    lines = [
        "## Simulated schedulers",
        "",
        f"{meta['trials']} trials replayed from {meta['recorded']} recorded learning curves "
        f"({meta['skipped']} trials without a full curve left out; seed-to-seed sd of the best "
        f"val IoU {meta['seed_sd']:.3f}) on {meta['gpus']} GPUs, {meta['orders']} trial orders, "
        f"max {meta['max_epochs']} epochs.",
        "",
        *_table(summary),
        "",
        "Rank correlation (Spearman) of the val IoU at a rung with the final best val IoU:",
        "",
        "| epoch | rho |",
        "|---:|---:|",
        *(f"| {e} | {'n/a' if np.isnan(r) else f'{r:.3f}'} |" for e, r in sorted(rho.items())),
        "",
        "![simulation](simulation.png)",
        "",
        recommendation_line(recommended),
    ]
    if ray_lines:
        lines += ["", "Real Ray Tune replay:", "", *(f"- {line}" for line in ray_lines)]
    return "\n".join(lines) + "\n"


def recommendation_line(recommended: pd.Series | None) -> str:
    if recommended is None:
        return (
            "Recommendation: no ASHA setting kept 98 % of FIFO's best IoU in the worst 5 % of "
            "orders on this material; run FIFO, or a larger grace_epochs."
        )
    return (
        f"Recommendation: grace_epochs {int(recommended[S.GRACE])}, reduction_factor "
        f"{int(recommended[S.ETA])}: keeps {recommended['best_ratio_worst5']:.3f} of FIFO's best "
        f"IoU in the worst 5 % of orders at {recommended['epochs_ratio']:.2f} of its trial-epochs."
    )
