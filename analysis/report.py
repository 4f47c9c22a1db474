"""``build_report``: one report over several run folders, in Markdown, HTML, CSV, LaTeX, JSON.

Example::

    from analysis import build_report
    out = build_report(["runs/super1", "runs/ebc1"], by=["init", "decoder"], out="report")
    # out/report.md, out/report.html, out/tables/*.csv|tex, out/figures/*.png, out/summary.json

Everything is written atomically and deterministically: the same run folders and options give
byte-identical files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pandas as pd

from analysis import figures as F
from analysis import param_importance as I
from analysis import results as R
from analysis.answer import answer_section
from analysis.compare_section import compare_blocks
from analysis.importance_section import importance_blocks
from analysis.load import RUN, Results, load_results
from analysis.maps import accuracy_panels
from analysis.render import Block, Figure, Heading, Para, Table, safe_name
from analysis.report_options import (
    Compare,
    ReportOptions,
    json_records,
    resolve_options,
    run_rungs,
)
from analysis.tables import (
    aggregate,
    format_table,
    level_label,
    metric_values,
    missing_repeats,
    status_counts,
    top_models,
)
from core import storage

TITLE = "microsweep report"
BCE = "bce_weight"
MAX_LISTED = 20  # rows of long lists shown in the report (the CSV holds all)


def _runs_section(res: Results) -> list[Block]:
    rows = []
    for run in res.runs:
        here = res.trials[res.trials[RUN] == run.index]
        counts = here[R.STATUS].value_counts()
        rows.append(
            {
                "run": run.path,
                "experiment": run.experiment,
                "dataset": run.dataset,
                "trials": len(here),
                **{s: int(counts.get(s, 0)) for s in R.STATUSES},
            }
        )
    table = pd.DataFrame(rows).set_index("run")
    return [Heading("Runs"), Table("runs", "Run folders and trial statuses", table)]


def _method_note(opts: ReportOptions) -> Para:
    what = "test IoU (%) of completed trials"
    if opts.include_stopped:
        what += (
            "; ASHA-stopped trials are **included** with their val IoU at the last rung they "
            "reached (they have no test IoU)"
        )
    return Para(
        f"Cells: mean ± sample standard deviation (ddof=1) of {what}, n = number of trials. "
        "A cell with one trial shows its value alone; an empty cell had no such trial. "
        "Stopped, diverged, errored and infeasible trials are counted in the status tables."
    )


class _Builder:
    def __init__(self, res: Results, opts: ReportOptions, progress: Callable[[str], None]):
        self.res, self.opts, self.progress = res, opts, progress
        self.blocks: list[Block] = []
        self.summary: dict = {
            "schema": 1,
            "metric": "completed trials' test IoU (%)",
            "std": "sample standard deviation (ddof=1)",
            "include_stopped": opts.include_stopped,
            "across": opts.across,
            "runs": [
                {"path": r.path, "experiment": r.experiment, "dataset": r.dataset} for r in res.runs
            ],
            "tables": {},
            "status": {},
            "top_models": {},
            "comparisons": [],
        }

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

    def factor_section(self, by: tuple[str, ...]) -> None:
        res, across = self.res, self.opts.across
        name = "_".join(safe_name(b) for b in by)
        label = " × ".join(by)
        self.progress(f"tables by {label}")
        long = aggregate(
            res.trials,
            by,
            across=across,
            epochs=res.epochs,
            include_stopped=self.opts.include_stopped,
        )
        wide = format_table(long, by, across=across)
        status = status_counts(res.trials, list(by))
        status.index = [level_label(i) for i in status.index]
        status.index.name = label
        top = top_models(res.trials, by, across=across)
        self.add(
            Heading(f"IoU by {label}"),
            Table(f"iou_by_{name}", f"IoU (%) by {label}: mean±std (n)", wide, data=long),
            Figure(
                f"iou_by_{name}",
                f"Mean ± sample std of IoU by {label}",
                F.bar_figure(long, by, across=across, title=f"IoU by {label}"),
            ),
            Table(f"status_by_{name}", f"Trial status by {label}", status),
            Table(
                f"top_by_{name}",
                f"Top model per {label} (best val IoU; its test IoU)",
                self._top_shown(top, by),
                data=top,
            ),
        )
        key = label
        self.summary["tables"][key] = json_records(long)
        self.summary["status"][key] = json_records(status.reset_index())
        self.summary["top_models"][key] = json_records(top)

    def _top_shown(self, top: pd.DataFrame, by: tuple[str, ...]) -> pd.DataFrame:
        if top.empty:
            return pd.DataFrame(columns=[*by, self.opts.across])
        cells = [
            f"{t:.1f} (val {v:.1f}, {name})"
            for t, v, name in zip(top[R.TEST_IOU], top[R.VAL_IOU], top[R.TRIAL], strict=True)
        ]
        frame = top.assign(
            level=[level_label(tuple(r)) for r in top[list(by)].itertuples(index=False, name=None)],
            cell=cells,
        )
        levels = list(dict.fromkeys(frame["level"]))
        cols = list(dict.fromkeys(frame[self.opts.across]))
        wide = frame.pivot(index="level", columns=self.opts.across, values="cell")
        wide = wide.reindex(levels)[cols].fillna("")
        wide.index.name, wide.columns.name = " × ".join(by), None
        return wide

    def importance_section(self) -> None:
        self.progress("hyperparameter importance")
        opts, trials = self.opts, self.res.trials
        blocks, entry = importance_blocks(
            trials,
            across=opts.across,
            factors=[f for f in self.res.factors if f in trials.columns and f != opts.across],
            n_boot=opts.importance_boot,
            seed=opts.seed,
        )
        self.add(*blocks)
        self.summary["importance"] = {**entry, "rows": json_records(entry["rows"])}

    def compare_section(self, factor: str, a: str, b: str) -> None:
        self.progress(f"comparing {factor} {a} vs {b}")
        blocks, entry = compare_blocks(self.res, self.opts, factor, a, b)
        self.add(*blocks)
        self.summary["comparisons"].append(entry)

    def curves_section(self) -> None:
        res, opts = self.res, self.opts
        if res.epochs.empty:
            return
        self.progress("learning curves")
        png, drawn, total = F.learning_curves(
            res.trials,
            res.epochs,
            across=opts.across,
            rungs=run_rungs(res, opts.across),
            max_curves=opts.max_curves,
            seed=opts.seed,
        )
        note = "" if drawn >= total else f" ({drawn} of {total} trials drawn, a seeded sample)"
        self.add(
            Heading("Learning curves"),
            Figure(
                "learning_curves",
                f"Val IoU per epoch, coloured by trial status; dashed lines mark ASHA rungs{note}",
                png,
            ),
        )

    def bce_section(self) -> None:
        res, opts = self.res, self.opts
        trials = res.trials
        if BCE not in trials.columns or trials[BCE].dropna().nunique() < 2:
            return
        self.progress("BCE-weight response")
        vals = metric_values(trials, res.epochs, include_stopped=opts.include_stopped)
        vals = vals[vals[BCE].notna()]
        if vals.empty:
            return
        self.add(
            Heading("BCE-weight response"),
            Figure(
                "bce_response",
                f"IoU vs {BCE} (points: trials; line: mean per level)",
                F.bce_response(vals, factor=BCE, across=opts.across),
            ),
        )

    def maps_section(self, factor: str = "init") -> None:
        if not self.opts.accuracy_maps:
            return
        self.progress("accuracy maps")
        panels = accuracy_panels(self.res, factor=factor, across=self.opts.across)
        if not panels:
            return
        self.add(
            Heading("Accuracy maps"),
            Para(
                f"Top model (best val IoU) of each `{factor}` level on test images: true "
                "positive white, true negative black, false positive cyan, false negative "
                "magenta, wrong foreground class yellow."
            ),
        )
        for group, items in panels.items():
            self.add(
                Figure(
                    f"accuracy_{safe_name(group)}",
                    f"Accuracy maps, {group}",
                    F.accuracy_figure(items),
                )
            )

    def repeats_section(self) -> None:
        res = self.res
        seeds = {r.index: r.seeds for r in res.runs if r.seeds}
        missing = missing_repeats(res.trials, res.factors, seeds)
        absent = missing[missing["absent"].map(len) > 0]
        self.summary["missing_repeats"] = {
            "configs_with_absent_repeats": len(absent),
            "configs_with_incomplete_repeats": len(missing),
        }
        self.add(Heading("Repeats"))
        if missing.empty:
            self.add(Para("Every configuration has all its repeats completed."))
            return
        self.add(
            Para(
                f"{len(absent)} configuration(s) lack a repeat entirely (absent seeds) and "
                f"{len(missing)} have repeats that did not complete; the first "
                f"{min(MAX_LISTED, len(missing))} are listed, all are in "
                "`tables/missing_repeats.csv`."
            )
        )
        shown = missing.drop(columns=[RUN]).head(MAX_LISTED)
        label = " × ".join(f for f in res.factors if f in res.trials.columns)
        shown = shown.assign(
            absent=shown["absent"].map(_seeds_shown),
            not_completed=shown["not_completed"].map(_seeds_shown),
        ).rename(
            columns={
                "config": label,
                "absent": "absent seeds",
                "not_completed": "seeds not completed",
            }
        )
        data = missing.assign(
            absent=missing["absent"].map(_seeds_text),
            not_completed=missing["not_completed"].map(_seeds_text),
        )
        self.add(
            Table(
                "missing_repeats",
                "Configurations with missing repeats",
                shown,
                data=data,
                index=False,
            )
        )


def _seeds_shown(seeds: Sequence[int]) -> str:
    return f"[{', '.join(str(s) for s in seeds)}]" if len(seeds) else ""


def _seeds_text(seeds: Sequence[int]) -> str:
    return " ".join(str(s) for s in seeds)


def assemble(res: Results, opts: ReportOptions, progress: Callable[[str], None]) -> _Builder:
    """All blocks and the summary of a report (no files written)."""
    opts = resolve_options(res, opts)
    b = _Builder(res, opts, progress)
    answer, b.summary["answer"] = answer_section(res)  # first: RUN/recommendation.json, if any
    b.add(*answer)
    b.add(*_runs_section(res), _method_note(opts))
    b.summary["by"] = [" × ".join(g) for g in opts.by]
    for group in opts.by:
        b.factor_section(group)
    b.importance_section()
    for factor, lvl_a, lvl_b in opts.compare:
        b.compare_section(factor, lvl_a, lvl_b)
    b.curves_section()
    b.bce_section()
    b.maps_section()
    b.repeats_section()
    return b


def _write_all(out: Path, b: _Builder) -> None:
    from analysis import render

    written: set[Path] = set()

    def put(rel: str, data: bytes) -> None:
        storage.write_bytes(out / rel, data)
        written.add(out / rel)

    for block in b.blocks:
        if isinstance(block, Table):
            put(f"tables/{block.name}.csv", render.to_csv(block).encode())
            put(f"tables/{block.name}.tex", render.to_latex(block).encode())
        elif isinstance(block, Figure):
            put(f"figures/{block.name}.png", block.png)
    put("report.md", render.to_markdown(TITLE, b.blocks).encode())
    put("report.html", render.to_html(TITLE, b.blocks).encode())
    storage.write_json(out / "summary.json", b.summary)
    for sub, exts in (("tables", {".csv", ".tex"}), ("figures", {".png"})):
        for old in sorted((out / sub).glob("*")):
            if old.suffix in exts and old not in written:
                old.unlink()  # left over from an earlier report with other options


def build_report(
    paths: Iterable[str | Path],
    *,
    by: Sequence[str | Sequence[str]] = (),
    across: str = R.DATASET,
    out: str | Path = "report",
    include_stopped: bool = False,
    compare: Sequence[Compare] = (),
    accuracy_maps: bool = True,
    importance_boot: int = I.N_BOOT,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write the report of the given run folders into ``out`` and return ``out``.

    ``by``: factors to tabulate, one table each (a sequence of names inside an entry crosses
    them); default every factor that varied. ``compare``: ``(factor, a, b)`` triples; default
    ``("init", "imagenet", "micronet")`` when both levels ran. ``importance_boot``: bootstrap
    resamples of the "What mattered" section (0: importances without intervals).
    """
    say = progress or (lambda _msg: None)
    say("reading run folders")
    res = load_results(paths)
    groups = tuple((g,) if isinstance(g, str) else tuple(g) for g in by)
    opts = ReportOptions(
        by=groups,
        across=across,
        include_stopped=include_stopped,
        compare=tuple(tuple(c) for c in compare),
        accuracy_maps=accuracy_maps,
        importance_boot=importance_boot,
        seed=seed,
    )
    b = assemble(res, opts, say)
    out = Path(out)
    say(f"writing {out}")
    _write_all(out, b)
    return out
