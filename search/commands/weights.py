"""``microsweep weights fetch|verify|list``: a weights folder for clusters without internet.

Examples::

    microsweep weights fetch resnet18 resnet34 --init imagenet,micronet --to weights/
    microsweep weights fetch --from-experiment exp.yaml --to weights/
    microsweep weights verify weights/
    microsweep weights list weights/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import DataError

FETCH_INITS = "imagenet,micronet,image-micronet"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "weights",
        help="fetch, verify and list a weights folder (for clusters without internet)",
        description="Published encoder weights in one folder, with SHA-256 in manifest.json.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fetch = actions.add_parser("fetch", help="download what init sources need into a folder")
    fetch.add_argument("encoders", nargs="*", metavar="ENCODER", help="e.g. resnet18 resnet34")
    fetch.add_argument(
        "--init", default=None,
        help=f"comma-separated init sources (default with ENCODERs: {FETCH_INITS})",
    )  # fmt: skip
    fetch.add_argument("--to", type=Path, help="the weights folder (created if needed)")
    fetch.add_argument(
        "--from-experiment", type=Path, metavar="FILE",
        help="fetch exactly the (init, encoder) pairs this sweep will plan",
    )  # fmt: skip
    fetch.set_defaults(func=run_fetch)
    for name, func, text in (
        ("verify", run_verify, "re-check every file's SHA-256 against the manifest"),
        ("list", run_list, "show what the folder holds"),
    ):
        action = actions.add_parser(name, help=text)
        action.add_argument("folder", type=Path, help="the weights folder")
        action.set_defaults(func=func)


def _pairs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], Path | None]:
    """The (init, encoder) pairs to fetch, and the experiment's `weights` folder if any."""
    from core.errors import UserError

    inits = [i.strip() for i in (args.init or "").split(",") if i.strip()]
    if args.from_experiment is None:
        if not args.encoders:
            raise UserError("weights fetch needs ENCODER names or --from-experiment FILE")
        return [(i, e) for i in inits or FETCH_INITS.split(",") for e in args.encoders], None
    from search.experiment import load_experiment
    from search.strategies import get_searcher
    from search.weights import planned_pairs
    from trainables.inits import check_available

    exp = load_experiment(args.from_experiment)
    points = get_searcher(exp.search.algorithm).points(exp)  # [] when sampled while running
    pairs = [
        (init, enc)
        for init, enc in sorted(planned_pairs(exp, points))
        if (not inits or init in inits) and (not args.encoders or enc in args.encoders)
        and check_available(init, enc) is None  # points the plan drops need nothing
    ]  # fmt: skip
    return pairs, exp.weights


def run_fetch(args: argparse.Namespace) -> int:
    from core.errors import UserError
    from trainables.weights_dir import fetch_pairs

    pairs, exp_folder = _pairs(args)
    folder = args.to or exp_folder
    if folder is None:
        raise UserError("weights fetch needs --to DIR (or a `weights:` key in the experiment)")
    if not pairs:
        print(f"nothing to fetch: the experiment plans no {FETCH_INITS} weights")
        return 0
    from huggingface_hub.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # its retry notices are noise; failures come as one line
    print(f"fetching {len(pairs)} (init, encoder) pair(s) into {folder}", file=sys.stderr)
    failures = fetch_pairs(pairs, folder, say=print)
    if failures:
        raise DataError(failures)  # the CLI prints one line each, exit code 2
    print(f"done: {folder}/manifest.json; use it with `weights: {folder}` or $MICROSWEEP_WEIGHTS")
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from trainables.weights_dir import read_manifest, verify_weights

    problems = verify_weights(args.folder)
    if problems:
        raise DataError(problems)  # the CLI prints one line each, exit code 2
    print(f"ok: {len(read_manifest(args.folder))} file(s) in {args.folder} match the manifest")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from trainables.weights_dir import list_weights

    rows = list_weights(args.folder)
    header = ("init", "encoder", "file", "size", "verified")
    cells = [header] + [
        (r["init"], r["encoder"], r["file"], _mb(r["size"]), r["verified"]) for r in rows
    ]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(header))]
    for row in cells:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    return 0 if all(r["verified"] == "yes" for r in rows) else 2


def _mb(size: object) -> str:
    return f"{size / 1e6:.1f} MB" if isinstance(size, int) else "?"
