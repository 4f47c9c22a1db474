"""Is ``microsweep simulate`` faithful to a real ASHA sweep? Compare a recorded ASHA run (with
``arrivals.parquet``, :mod:`search.arrivals`) with the replay of its FIFO twin's curves
(the same grid, every configuration to the end), as ``bench/asha_vs_fifo.py`` records them.

Example::

    check = fidelity("bench/recorded/asha_vs_fifo/bench-asha",
                     "bench/recorded/asha_vs_fifo/bench-fifo", slots=2)
    print("\\n".join(check.lines()))
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from analysis import fidelity as F
from analysis import results as R
from analysis import simulation as S
from analysis.load import load_results
from search.launch import EXPERIMENT_FILE
from search.simulate import RayRule, scheduler_settings


@dataclass(frozen=True)
class Fidelity:
    measured: int  # the ASHA run's trial-epochs
    fifo: int  # the FIFO run's trial-epochs
    replayed: int  # Ray's ASHA rule fed the ASHA run's results in Ray's order
    mismatched: int  # trials whose replayed stop epoch differs from the real one
    launch: int  # event replay of the FIFO curves, the real launch order, no start overhead
    launch_overhead: int  # the same with the measured start overhead
    overhead_s: float
    orders: np.ndarray  # trial-epochs of the event replay over random orders (with overhead)
    slots: int
    curve_diff: float  # largest |val IoU| difference, ASHA vs FIFO run, same config and epoch

    def ratio(self, epochs: float) -> float:
        return float(epochs) / self.fifo

    def lines(self) -> list[str]:
        lo, hi = np.quantile(self.orders, [0.05, 0.95]) if len(self.orders) else (np.nan,) * 2
        r = self.ratio
        return [
            f"measured: ASHA {self.measured} / FIFO {self.fifo} trial-epochs = "
            f"{r(self.measured):.3f}",
            f"Ray's ASHA rule on the ASHA run's results in Ray's order: {self.replayed} "
            f"({r(self.replayed):.3f}); {self.mismatched} trial(s) decided differently",
            f"event replay of the FIFO curves, real launch order, {self.slots} slots: "
            f"{self.launch} ({r(self.launch):.3f}); with the measured start overhead "
            f"{self.overhead_s:.1f} s: {self.launch_overhead} ({r(self.launch_overhead):.3f})",
            f"over {len(self.orders)} random orders: mean {r(self.orders.mean()):.3f}, "
            f"5-95 % {r(lo):.3f}-{r(hi):.3f}",
            f"ASHA run's val IoU vs the FIFO run's (same config and epoch): largest difference "
            f"{self.curve_diff:.4f}",
        ]


def _scheduler(run: Path) -> dict:
    return json.loads((run / EXPERIMENT_FILE).read_text())["raw"]["scheduler"]


def fidelity(asha_run: str | Path, fifo_run: str | Path, *, slots: int, orders: int = 50,
             seed: int = 0) -> Fidelity:  # fmt: skip
    """The comparison; ``slots``: trials at once in the real runs (2: 1 CPU each on 2)."""
    asha_run, fifo_run = Path(asha_run), Path(fifo_run)
    raw = _scheduler(asha_run)
    sched = scheduler_settings("asha", int(raw["grace_epochs"]), int(raw["reduction_factor"]),
                               int(raw["max_epochs"]))  # fmt: skip
    arrivals = F.load_arrivals(asha_run)
    decided = F.replay_arrivals(arrivals, RayRule("asha", sched), max_epochs=sched.max_epochs)
    res = load_results([asha_run, fifo_run])
    asha_epochs = res.epochs[res.epochs["run"] == 0]
    overhead = F.start_overhead(arrivals, asha_epochs)
    curves = S.load_curves([fifo_run])

    def replay(order: list[int], overhead_s: float) -> int:
        out = S.run_cluster(curves, order, gpus=slots, rule=RayRule("asha", sched),
                            milestones=sched.rungs(), max_epochs=sched.max_epochs,
                            overhead_s=overhead_s)  # fmt: skip
        return out.trial_epochs

    rng = np.random.default_rng(seed)
    launch = F.launch_order(curves)
    random_orders = [list(rng.permutation(len(curves))) for _ in range(orders)]
    return Fidelity(
        measured=len(asha_epochs), fifo=int((res.epochs["run"] == 1).sum()),
        replayed=int(decided["predicted_epochs"].sum()),
        mismatched=int((decided["predicted_epochs"] != decided["epochs"]).sum()),
        launch=replay(launch, 0.0), launch_overhead=replay(launch, overhead),
        overhead_s=overhead, orders=np.array([replay(o, overhead) for o in random_orders]),
        slots=slots, curve_diff=_curve_diff(res),
    )  # fmt: skip


def _curve_diff(res) -> float:
    """The runs' val IoU at the same configuration and epoch, largest difference."""
    factors = [f for f in res.factors if f in res.trials.columns]
    keyed = res.epochs.merge(res.trials[["run", R.TRIAL, *factors]], on=["run", R.TRIAL])
    wide = keyed.pivot_table(index=[*factors, R.EPOCH], columns="run", values=R.VAL_IOU)
    if not {0, 1} <= set(wide.columns):
        return float("nan")
    both = wide.dropna()
    return float((both[0] - both[1]).abs().max()) if len(both) else float("nan")
