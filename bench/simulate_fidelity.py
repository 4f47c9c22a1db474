"""Fidelity of `microsweep simulate` to a real ASHA sweep (issue 15: the simulated trial-epochs
ratio of the 18-configuration ASHA/FIFO benchmark within 10 % of the measured one).

Reads the run folders ``bench/asha_vs_fifo.py --record DIR`` wrote (the repository keeps one
recording in bench/recorded/asha_vs_fifo; no checkpoints) and prints, side by side: the
measured ASHA/FIFO trial-epochs ratio; Ray's ASHA rule fed the ASHA run's results in the order
Ray's driver took them (arrivals.parquet); and the event replay of the FIFO run's curves in the
real launch order and over random orders, which is what `microsweep simulate` predicts.

    python bench/simulate_fidelity.py [--recorded bench/recorded/asha_vs_fifo] [--orders 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from search.simulate_fidelity import report_lines

RECORDED = Path(__file__).parent / "recorded" / "asha_vs_fifo"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--recorded", type=Path, default=RECORDED)
    parser.add_argument("--slots", type=int, default=2, help="trials at once in the real runs")
    parser.add_argument("--orders", type=int, default=200)
    args = parser.parse_args()
    lines = report_lines(args.recorded / "bench-asha", args.recorded / "bench-fifo",
                         slots=args.slots, orders=args.orders)  # fmt: skip
    print("\n".join(lines))


if __name__ == "__main__":
    main()
