"""``microsweep simulate RUN ...``: FIFO and ASHA settings replayed on a run's learning curves."""

from __future__ import annotations

import argparse

EPILOG = """examples:
  microsweep simulate runs/super1 --trials 1000 --gpus 64
  microsweep simulate runs/super1 runs/super1-b --grace 1,2,4 --eta 2,3 --orders 50
  microsweep simulate runs/super1 --trials 200 --gpus 16 --ray --speedup 200
Writes RUN/simulation/ (or --out): simulation.parquet, simulation.png, simulation.md and .json;
`microsweep sweep FILE --dry-run` quotes it for that run folder."""


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers like 1,2,4, but got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected integers like 1,2,4, but got {text!r}")
    return values


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="replay recorded learning curves: how much ASHA saves and loses against FIFO",
        description="Replay the learning curves of run folders (bootstrapped to --trials) under "
        "FIFO and each ASHA setting, over several trial orders, on --gpus simulated GPUs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder(s) with epochs.parquet")
    p.add_argument("--trials", type=int, help="trials per sweep (default: as many as recorded)")
    p.add_argument("--gpus", type=int, default=8, help="GPUs of the simulated cluster (default 8)")
    p.add_argument("--grace", type=_ints, default=(1, 2), metavar="A,B", help="grace epochs")
    p.add_argument(
        "--eta", type=_ints, default=(2, 3, 4), metavar="2,3,4", help="reduction factors"
    )
    p.add_argument("--orders", type=int, default=20, help="trial orders per setting (default 20)")
    p.add_argument("--max-epochs", type=int, help="max epochs (default: the longest curve)")
    p.add_argument("--ray", action="store_true", help="also run the first ASHA setting in Ray Tune")
    p.add_argument("--speedup", type=float, default=100.0, help="Ray replay: sleep epoch time / S")
    p.add_argument(
        "--checkpoint-mb", type=float, help="Ray replay checkpoint size (default: model)"
    )
    p.add_argument(
        "--start-s", type=float, default=0.0, metavar="S",
        help="seconds a trial takes to start before its first epoch (worker, imports; default 0)",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="bootstrap and order seed (default 0)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: RUN/simulation)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from core.errors import ReportError, UserError
    from search.simulate import SimulateSettings, simulate

    settings = SimulateSettings(
        runs=tuple(args.runs), trials=args.trials, gpus=args.gpus, graces=args.grace,
        etas=args.eta, orders=args.orders, max_epochs=args.max_epochs, speedup=args.speedup,
        checkpoint_mb=args.checkpoint_mb, ray=args.ray, seed=args.seed, out=args.out,
        start_s=args.start_s,
    )  # fmt: skip
    try:
        result = simulate(settings)
    except ReportError as err:
        raise UserError(str(err)) from None
    print((result.out / "simulation.md").read_bytes().decode(), end="")
    print(result.out / "simulation.md")
    return 0
