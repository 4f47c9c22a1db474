"""``microsweep sweep FILE [--dry-run] [--set k=v ...] [--address ADDR] [--resume] [-v]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core import keys as K  # constants only: no imports behind it

if TYPE_CHECKING:
    from core.storage import Location

EXIT_NOTHING = 2  # a plan in which no trial can train


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sweep",
        help="run an architecture/hyperparameter sweep from an experiment file",
        description="Run a sweep on an embedded local Ray (default) or a Ray cluster.",
    )
    parser.add_argument(
        "file", help="experiment YAML file, or a preset name (microsweep list presets)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan; train nothing")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a key, e.g. --set scheduler.max_epochs=20 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--address", help="Ray cluster address ('auto': the local `ray start`)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted sweep")
    parser.add_argument(
        "--offline", action="store_true",
        help="no network: refuse before launch if planned weights are not fetched",
    )  # fmt: skip
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="show Ray's own output (tables, worker logs) here instead of in RUN/logs/",
    )  # fmt: skip
    parser.set_defaults(func=run)


def experiment_path(file: str) -> Path:
    """A file path, or a preset name when no such file exists."""
    path = Path(file)
    if path.exists() or path.suffix in (".yaml", ".yml"):
        return path
    from core.errors import UserError
    from spaces.presets import preset_path

    try:
        return preset_path(file)
    except ValueError as err:
        raise UserError(f"experiment file '{file}' does not exist and {err}") from None


def run(args: argparse.Namespace) -> int:
    from search.experiment import load_experiment
    from search.plan import format_plan, make_plan

    exp = load_experiment(experiment_path(args.file), overrides=args.overrides)
    if args.offline:  # issue 13: read by search.weights in make_plan (also in run_sweep)
        os.environ["MICROSWEEP_OFFLINE"] = "1"
    if args.dry_run:
        plan = make_plan(exp, progress=pair_progress)  # every trial config checked
        print(format_plan(plan))
        return 0 if plan.trials else EXIT_NOTHING
    from search.launch import run_sweep

    result = run_sweep(
        exp, address=args.address, resume=args.resume, progress=pair_progress,
        verbose=args.verbose,
    )  # fmt: skip
    print(format_summary(result))
    return 0


def pair_progress(done: int, total: int) -> None:
    """Encoder/decoder pairs built by smp while planning (a minute for ``paper``, once)."""
    line = f"checking encoder/decoder pairs with smp: {done}/{total}"
    if sys.stderr.isatty():
        print(f"\r{line}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    elif done in (1, total) or done % 25 == 0:
        print(line, file=sys.stderr, flush=True)


def format_summary(result) -> str:
    """Best trial by the task's objective, counts by status, and the command to run next."""
    counts = ", ".join(f"{n} {s}" for s, n in sorted(result.counts.items())) or "no trials"
    lines = [f"results: {result.run_dir}", f"trials: {counts}"]
    if result.best:
        lines += _best_lines(result)
    nxt = _next_line(result)
    return "\n".join(lines + ([nxt] if nxt else []))


def _best_lines(result) -> list[str]:
    from analysis import results as R
    from analysis.status import describe

    best, exp = result.best, result.plan.experiment
    metric = exp.task.metric
    factors, seed = describe(best, list(exp.space), ""), best.get(R.SEED)
    score = f"  {_LABELS.get(metric, metric)} {best[metric]:.4f}"
    if metric == K.VAL_IOU:
        test = best.get(R.TEST_IOU)
        if test is not None:
            score += f", test IoU {test:.4f}"
        else:  # a stopped best, or a custom trainable that reports no test figures
            done = best.get(R.STATUS) == R.COMPLETED
            score += ", test IoU - (none reported)" if done else ", test IoU - (not completed)"
    return [
        " ".join(p for p in ("best trial:", best[R.TRIAL], factors, f"seed={seed}") if p),
        score,
        f"  checkpoint: {_checkpoint(result.run_dir, best.get(R.CHECKPOINT))}",
    ]


def _next_line(result) -> str | None:
    """What to run next: a segmentation run's report; a pretraining run's zoo entry in use."""

    exp = result.plan.experiment
    zoo = result.best.get(K.ZOO_ENTRY) if result.best else None
    if exp.task.metric == K.VAL_IOU:
        return f"next: microsweep report {result.run_dir}"
    if zoo:
        where = exp.train.get("zoo_dir", "ZOO")
        return f"next: a segmentation sweep with init: zoo:{zoo} and train.zoo_dir: {where}"
    return None


_LABELS = {K.VAL_IOU: "val IoU", K.VAL_TOP1: "val top-1"}  # the objectives' names in lines


def _checkpoint(run_dir: Location, relative: str | None) -> str:
    return str(run_dir / relative) if relative else "-"
