"""Report figures as deterministic PNG bytes (matplotlib's Agg canvas, no pyplot state).

PNG metadata is stripped (no software version, no date), so the same tables give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from analysis import results as R
from analysis.load import RUN
from analysis.tables import MEAN, STD, level_label, ordered

DPI = 100
MAX_PANELS = 12
STATUS_COLOURS = {
    R.COMPLETED: "#1f77b4",
    R.STOPPED: "#ff7f0e",
    R.DIVERGED: "#d62728",
    R.ERRORED: "#7f7f7f",
    R.INFEASIBLE: "#bcbd22",
}
# Accuracy map colours as in the paper, plus yellow for "right foreground, wrong class".
TP, TN, FP, FN, WRONG_CLASS = (
    (255, 255, 255),
    (0, 0, 0),
    (0, 255, 255),
    (255, 0, 255),
    (
        255,
        255,
        0,
    ),
)


def _new(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def bar_figure(long: pd.DataFrame, by: Sequence[str], *, across: str, title: str) -> bytes:
    """Mean ± sample std bars: one group per level of ``by``, one bar per ``across`` value.

    Up to 24 bars stand upright; more lie down (levels on the y axis, top to bottom) so that
    the labels of, say, 40 encoders stay readable."""
    frame = long.assign(
        level=[level_label(tuple(t)) for t in long[list(by)].itertuples(index=False, name=None)]
    )
    levels = list(dict.fromkeys(frame["level"]))
    cols = list(dict.fromkeys(frame[across]))
    means = frame.pivot(index="level", columns=across, values=MEAN).reindex(levels)[cols]
    stds = frame.pivot(index="level", columns=across, values=STD).reindex(levels)[cols]
    n_bars = len(levels) * len(cols)
    lying = n_bars > 24
    fig = _new(8.0, 0.11 * n_bars + 1.8) if lying else _new(max(6.0, 0.3 * n_bars + 2), 4.2)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(cols))
    pos = np.arange(len(levels))
    draw = ax.barh if lying else ax.bar
    for i, col in enumerate(cols):
        err = {"xerr" if lying else "yerr": stds[col].fillna(0).to_numpy(float)}
        offset = (i - (len(cols) - 1) / 2) * width
        draw(pos + offset, means[col].to_numpy(float), width, capsize=2, label=str(col), **err)
    if lying:
        ax.set_yticks(pos, levels)
        ax.invert_yaxis()
        ax.set_xlabel("IoU (%)")
        ax.set_xlim(0, 100)
        ax.grid(axis="x", alpha=0.3)
    else:
        tilt = len(levels) > 6
        ax.set_xticks(pos, levels, rotation=45 if tilt else 0, ha="right" if tilt else "center")
        ax.set_ylabel("IoU (%)")
        ax.set_ylim(0, 100)
        ax.grid(axis="y", alpha=0.3)
    ax.set_title(title)
    if len(cols) > 1:
        fig.legend(
            *ax.get_legend_handles_labels(),
            title=across,
            fontsize="small",
            ncols=min(6, len(cols)),
            loc="outside upper center",
        )
    return to_png(fig)


def _panel_grid(n: int) -> tuple[int, int]:
    ncols = 2 if n in (2, 4) else min(3, n)
    return math.ceil(n / ncols), ncols


def _curve_segments(epochs: pd.DataFrame, keys: pd.DataFrame) -> list[np.ndarray]:
    sub = epochs.merge(keys, on=[RUN, R.TRIAL]).sort_values([RUN, R.TRIAL, R.EPOCH])
    xy = np.column_stack([sub[R.EPOCH].to_numpy(float), sub[R.VAL_IOU].to_numpy(float) * 100])
    ids = sub[RUN].astype(str) + "/" + sub[R.TRIAL].astype(str)
    cuts = np.flatnonzero(ids.to_numpy()[1:] != ids.to_numpy()[:-1]) + 1
    return [seg for seg in np.split(xy, cuts) if len(seg)]


def _sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_values([RUN, R.TRIAL])


def learning_curves(
    trials: pd.DataFrame,
    epochs: pd.DataFrame,
    *,
    across: str,
    rungs: Mapping[str, Sequence[int]],
    max_curves: int = 300,
    seed: int = 0,
) -> tuple[bytes, int, int]:
    """Val IoU vs epoch per ``across`` value, coloured by status, ASHA rungs as dashed lines.

    At most ``max_curves`` curves per panel and status are drawn (a seeded sample); returns
    the PNG and the numbers of curves drawn and available.
    """
    groups = ordered(trials[across].dropna())[:MAX_PANELS]
    nrows, ncols = _panel_grid(max(1, len(groups)))
    fig = _new(4.2 * ncols, 3.2 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    drawn = total = 0
    for ax, group in zip(axes, groups, strict=False):
        here = trials[trials[across] == group]
        for status, colour in STATUS_COLOURS.items():
            keys = here.loc[here[R.STATUS] == status, [RUN, R.TRIAL]]
            total += len(keys)
            keys = _sample(keys, max_curves, seed)
            segs = _curve_segments(epochs, keys)
            drawn += len(segs)
            ax.add_collection(LineCollection(segs, colors=colour, linewidths=0.7, alpha=0.5))
        for rung in rungs.get(str(group), ()):
            ax.axvline(rung, color="k", linestyle="--", linewidth=0.8, alpha=0.6)
        ax.autoscale_view()
        ax.set_ylim(0, 100)
        ax.set_title(str(group))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val IoU (%)")
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=c, label=s) for s, c in STATUS_COLOURS.items()]
    handles.append(Line2D([], [], color="k", linestyle="--", label="ASHA rung"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize="small")
    return to_png(fig), drawn, total


def bce_response(values: pd.DataFrame, *, factor: str, across: str) -> bytes:
    """IoU (``value`` column, percent) vs ``factor`` per ``across`` value: points and means."""
    fig = _new(6.5, 4.2)
    ax = fig.add_subplot()
    for group in ordered(values[across].dropna()):
        here = values[values[across] == group]
        x = here[factor].astype(float).to_numpy()
        pts = ax.scatter(x, here["value"].to_numpy(float), s=8, alpha=0.35)
        mean = here.groupby(factor)["value"].mean().sort_index()
        ax.plot(
            mean.index.astype(float),
            mean.to_numpy(float),
            "-o",
            ms=4,
            color=pts.get_facecolor()[0][:3],
            label=str(group),
        )
    ax.set_xlabel(factor)
    ax.set_ylabel("test IoU (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(title=across, fontsize="small")
    return to_png(fig)


def accuracy_map(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """RGB map of index masks: TP white, TN black, FP cyan, FN magenta (class 0 is background;
    a foreground pixel given the wrong foreground class is yellow)."""
    if truth.shape != pred.shape:
        raise ValueError(f"mask shapes differ: truth {truth.shape} vs prediction {pred.shape}")
    out = np.zeros((*truth.shape, 3), np.uint8)
    fg_t, fg_p = truth != 0, pred != 0
    out[fg_t & (pred == truth)] = TP
    out[~fg_t & ~fg_p] = TN
    out[~fg_t & fg_p] = FP
    out[fg_t & ~fg_p] = FN
    out[fg_t & fg_p & (pred != truth)] = WRONG_CLASS
    return out


def accuracy_figure(panels: Sequence[tuple[str, str, np.ndarray]]) -> bytes:
    """A grid of accuracy maps: rows = labels (e.g. init source), columns = images."""
    rows = list(dict.fromkeys(p[0] for p in panels))
    cols = list(dict.fromkeys(p[1] for p in panels))
    fig = _new(2.4 * len(cols) + 0.6, 2.4 * len(rows) + 0.6)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for row, col, rgb in panels:
        ax = axes[rows.index(row), cols.index(col)]
        ax.imshow(rgb, interpolation="nearest")
        ax.set_title(f"{row}\n{col}", fontsize="small")
    legend = [("TP", TP), ("TN", TN), ("FP", FP), ("FN", FN), ("wrong class", WRONG_CLASS)]
    handles = [
        Line2D([], [], marker="s", ls="", mec="k", mfc=np.array(c) / 255, label=n)
        for n, c in legend
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, fontsize="small")
    return to_png(fig)


def importance_figure(
    tidy: pd.DataFrame, *, across: str, labels: Mapping[str, str] | None = None
) -> bytes:
    """Importance bars per factor (one bar per evaluator) with their CI, a panel per
    ``across`` value; factors ordered as in ``tidy`` (most important first)."""
    labels = labels or {}
    groups = list(dict.fromkeys(tidy[across]))[:MAX_PANELS]
    evaluators = list(dict.fromkeys(tidy["evaluator"]))
    factors = list(dict.fromkeys(tidy["factor"]))
    nrows, ncols = _panel_grid(len(groups))
    fig = _new(4.2 * ncols, (0.35 * len(factors) * len(evaluators) + 1.4) * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    height = 0.8 / len(evaluators)
    pos = np.arange(len(factors))
    for ax, group in zip(axes, groups, strict=False):
        for i, name in enumerate(evaluators):
            here = tidy[(tidy[across] == group) & (tidy["evaluator"] == name)]
            here = here.set_index("factor").reindex(factors)
            value = here["importance"].to_numpy(float)
            err = np.vstack([value - here["ci_low"], here["ci_high"] - value])
            err = np.nan_to_num(np.clip(err, 0, None))
            offset = (i - (len(evaluators) - 1) / 2) * height
            ax.barh(pos + offset, value, height, xerr=err, capsize=2, label=labels.get(name, name))
        ax.set_yticks(pos, factors)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("importance (sums to 1)")
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(str(group))
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncols=4)
    return to_png(fig)
