"""``microsweep report RUN [RUN ...]``: paper-style tables and figures over sweep run folders."""

from __future__ import annotations

import argparse
import sys

EPILOG = """examples:
  microsweep report runs/super1 runs/ebc1 --out report
  microsweep report runs/ --by init,decoder,encoder --compare init:imagenet:micronet
  microsweep report runs/super1 --by decoder+encoder --include-stopped
--by: one table per comma-separated item; 'a+b' crosses two factors in one table."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="tables (mean±std IoU), comparisons and figures from run folders",
        description="Build report.md, report.html, tables/*.csv|tex, figures/*.png and "
        "summary.json from the Parquet/JSON files that sweeps write.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "runs", nargs="+", metavar="RUN", help="run folder, folder of run folders, or URI"
    )
    p.add_argument(
        "--by", metavar="FACTOR[,FACTOR]", help="factors to tabulate (default: all varied)"
    )
    p.add_argument("--across", default="dataset", help="table columns: dataset or experiment")
    p.add_argument("--out", default="report", metavar="DIR", help="output folder (default: report)")
    p.add_argument(
        "--include-stopped",
        action="store_true",
        help="include ASHA-stopped trials at their last rung's val IoU (labelled)",
    )
    p.add_argument(
        "--compare",
        nargs="+",
        action="extend",
        default=[],
        metavar="FACTOR:A:B",
        help="paired comparison and error reduction of level B over level A",
    )
    p.add_argument("--no-maps", action="store_true", help="skip accuracy maps")
    p.add_argument(
        "--importance-boot",
        type=int,
        default=100,
        metavar="N",
        help="bootstrap resamples of the importance intervals (default: 100; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default: 0)")
    p.set_defaults(func=run)


def parse_by(text: str | None) -> list[list[str]]:
    if not text:
        return []
    return [[f.strip() for f in item.split("+") if f.strip()] for item in text.split(",") if item]


def parse_compare(items: list[str]) -> list[tuple[str, str, str]]:
    from core.errors import ReportError

    out = []
    for item in items:
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ReportError(
                f"--compare takes FACTOR:A:B (e.g. init:imagenet:micronet), but got {item!r}"
            )
        out.append((parts[0], parts[1], parts[2]))
    return out


def run(args: argparse.Namespace) -> int:
    from analysis import build_report
    from core.errors import ReportError, UserError

    def progress(msg: str) -> None:
        print(f"report: {msg}", file=sys.stderr, flush=True)

    try:
        out = build_report(
            args.runs,
            by=parse_by(args.by),
            across=args.across,
            out=args.out,
            include_stopped=args.include_stopped,
            compare=parse_compare(args.compare),
            accuracy_maps=not args.no_maps,
            importance_boot=args.importance_boot,
            seed=args.seed,
            progress=progress,
        )
    except ReportError as err:
        raise UserError(str(err)) from None
    print(out / "report.html")
    return 0
