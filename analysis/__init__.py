"""Results schema (Parquet), aggregation and reports. Never imports ray.

Notebook API::

    from analysis import load_runs, aggregate, format_table, build_report
    trials = load_runs(["runs/super1"])
    format_table(aggregate(trials, ["init"]), ["init"])
"""

from analysis.aggregate import (
    aggregate,
    compare_top,
    error_reduction,
    format_table,
    missing_repeats,
    status_counts,
    summarize,
    top_models,
)
from analysis.errors import ReportError
from analysis.load import Results, load_results, load_runs
from analysis.report import build_report
from analysis.stats import paired_by, paired_comparison

__all__ = [
    "ReportError",
    "Results",
    "aggregate",
    "build_report",
    "compare_top",
    "error_reduction",
    "format_table",
    "load_results",
    "load_runs",
    "missing_repeats",
    "paired_by",
    "paired_comparison",
    "status_counts",
    "summarize",
    "top_models",
]
