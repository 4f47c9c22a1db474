"""Results schema (Parquet), aggregation and reports. Never imports ray.

Notebook API::

    from analysis import load_runs, aggregate, format_table, build_report, importance
    trials = load_runs(["runs/super1"])
    format_table(aggregate(trials, ["init"]), ["init"])
    importance(trials)   # fANOVA and PED-ANOVA importance of each factor, bootstrap CIs

The names below are imported on first use: trial workers and the sweep driver import
``analysis.results`` and ``core.storage`` only, without pandas, scipy or matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

_HOMES = {
    "aggregate": "analysis.tables",
    "compare_top": "analysis.tables",
    "error_reduction": "analysis.tables",
    "format_table": "analysis.tables",
    "missing_repeats": "analysis.tables",
    "status_counts": "analysis.tables",
    "summarize": "analysis.tables",
    "top_models": "analysis.tables",
    "ReportError": "core.errors",
    "importance": "analysis.param_importance",
    "importance_study": "analysis.param_importance",
    "Results": "analysis.load",
    "load_results": "analysis.load",
    "load_runs": "analysis.load",
    "build_report": "analysis.report",
    "paired_by": "analysis.stats",
    "paired_comparison": "analysis.stats",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'analysis' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
