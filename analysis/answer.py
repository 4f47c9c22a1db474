"""The report's "Answer" section: ``RUN/recommendation.json`` in words and two tables.

Rendered from the file alone (never recomputed), so the report and the JSON cannot disagree.
A report over runs without a recommendation has no Answer section.

Example::

    blocks, summary = answer_section(load_results(["runs/new-material"]))
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from analysis.load import Results, RunInfo
from analysis.recommend import read_recommendation
from analysis.render import Block, Heading, Para, Table
from analysis.status import show_value
from analysis.verdict import ci_text

PREDICT = "microsweep predict {run}/model IMAGES --out pred"
LISTS = ("trials", "seeds", "folds")  # per-candidate lists left out of the CSV table


def _pct(value: object) -> str:
    return f"{100 * float(value):.1f}" if _finite(value) else "n/a"


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _mean_std(stat: Mapping) -> str:
    """``92.2 ± 2.1`` (percent), the mean alone when there is no std."""
    if not _finite(stat.get("mean")):
        return "n/a"
    std = stat.get("std")
    return f"{_pct(stat['mean'])} ± {_pct(std)}" if _finite(std) else _pct(stat["mean"])


def _hours(value: object) -> str:
    return f"{float(value):.2f}" if _finite(value) else "0.00"


def config_text(config: Mapping[str, object]) -> str:
    return ", ".join(f"{k}={show_value(v)}" for k, v in config.items())


def unit(rec: Mapping) -> str:
    """``seed`` or ``fold``: what the confirm trials of a configuration vary (files written
    before ``recommend --folds`` have no ``replicates`` and are over seeds)."""
    return str(rec.get("replicates") or "seeds")[:-1]


def _paragraphs(rec: dict, run: RunInfo) -> list[Block]:
    win = next(c for c in rec["candidates"] if c["rank"] == rec["winner"]["rank"])
    stage = win.get("trial_epochs_by_stage") or {}
    cost, total = win["cost_hours"], rec.get("total") or {}
    n = len(win["trials"])
    failed = len(win.get("failed_trials") or [])
    lost = f" ({failed} more did not complete and are not counted)" if failed else ""
    return [
        Para(f"**Use {config_text(win['config'])}** (evidence: **{rec['evidence']}**)."),
        Para(rec["verdict"]),
        Para(
            f"How sure: P(best) = {win['p_best']:.2f}, the share of {rec['n_boot']} bootstrap "
            f"resamples of the confirm {unit(rec)}s in which it ranks first on mean val IoU. "
            f"Its test IoU is {_mean_std(win['test_iou'])} % over {n} confirm trial(s){lost}, "
            f"95 % CI {ci_text(win['ci95'])}; val IoU {_mean_std(win['val_iou'])} %."
        ),
        Para(
            f"What it cost: {win['trial_epochs']} trial-epochs on this configuration "
            f"({stage.get('search', 0)} search + {stage.get('confirm', 0)} confirm), "
            f"{_hours(cost.get('cpu'))} CPU-hours and {_hours(cost.get('gpu'))} GPU-hours; "
            f"the whole run: {total.get('trials', 'n/a')} trials, "
            f"{total.get('trial_epochs', 'n/a')} trial-epochs, "
            f"{_hours((total.get('cost_hours') or {}).get('cpu'))} CPU-hours, "
            f"{_hours((total.get('cost_hours') or {}).get('gpu'))} GPU-hours."
        ),
        Para(f"Use it: `{PREDICT.format(run=run.path)}` (best trial `{win['best_trial']}`)."),
    ]


def _diff(c: Mapping) -> str:
    paired = c.get("paired_to_next")
    if not paired or not paired.get("n_pairs"):
        return ""
    diff = paired["mean_diff"]
    sign = "+" if _finite(diff) and diff >= 0 else ""
    return f"{sign}{_pct(diff)} {ci_text(paired['ci95'])} (n={paired['n_pairs']})"


def candidates_table(rec: dict, name: str) -> Table:
    rows = [
        {
            "rank": c["rank"],
            "configuration": c["label"],
            "val IoU %": _mean_std(c["val_iou"]),
            "test IoU %": _mean_std(c["test_iou"]),
            "test 95% CI": ci_text(c["ci95"]),
            "P(best)": f"{c['p_best']:.2f}",
            "trials": len(c["trials"]),
            "trial-epochs": c["trial_epochs"],
            "CPU-h": _hours(c["cost_hours"].get("cpu")),
            "GPU-h": _hours(c["cost_hours"].get("gpu")),
            "test diff to next": _diff(c),
        }
        for c in rec["candidates"]
    ]
    data = pd.json_normalize(
        [{k: v for k, v in c.items() if k not in LISTS} for c in rec["candidates"]]
    )
    return Table(
        name,
        f"Confirmed candidates, ranked by mean val IoU (mean ± sample std over confirm "
        f"{unit(rec)}s; diff = test IoU of this − the next on shared {unit(rec)}s, 95 % "
        "bootstrap CI)",
        pd.DataFrame(rows).set_index("rank"),
        data=data,
    )


def class_table(rec: dict, name: str) -> Table | None:
    rows = {}
    for c in rec["candidates"]:
        for split, classes in sorted((c.get("class_iou") or {}).items()):
            for cls, value in classes.items():
                rows.setdefault(c["label"], {})[f"{split}: {cls}"] = _pct(value)
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index").fillna("")
    frame.index.name = "configuration"
    return Table(name, "Per-class IoU (%) of the candidates, mean over confirm trials", frame)


def answer_section(res: Results) -> tuple[list[Block], list[dict]]:
    """The Answer blocks of every run that has a ``recommendation.json``, and a summary."""
    blocks: list[Block] = []
    summary: list[dict] = []
    found = [(run, rec) for run in res.runs if (rec := read_recommendation(run.location))]
    for run, rec in found:
        several = len(res.runs) > 1  # name the run this answer is for
        suffix = f"_{run.index}" if several else ""
        blocks += [Heading("Answer")] if not blocks else []
        if several:
            blocks.append(Heading(f"{run.path} ({run.experiment}, {run.dataset})", level=3))
        blocks += _paragraphs(rec, run)
        blocks.append(candidates_table(rec, f"answer_candidates{suffix}"))
        per_class = class_table(rec, f"answer_class_iou{suffix}")
        blocks += [per_class] if per_class else []
        summary.append({"run": run.path, "winner": rec["winner"], "evidence": rec["evidence"]})
    return blocks, summary
