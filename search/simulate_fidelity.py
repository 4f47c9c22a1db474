"""Is ``microsweep simulate`` faithful to a real ASHA sweep? Two checks on the run folders
``bench/asha_vs_fifo.py --record`` keeps (bench/recorded/asha_vs_fifo in the repository):

- :func:`decisions`: the real ASHA run's results, in the order Ray's driver took them
  (``arrivals.parquet``, :mod:`search.arrivals`), fed to Ray's ASHA rule as the replay asks it
  (:class:`search.simulate.RayRule`): the trial-epochs it decides against the measured ones.
- :func:`prediction`: the event replay of the FIFO twin's curves (the same grid, every
  configuration to the end) in the real launch order and over random orders: what
  ``microsweep simulate`` predicts for the ASHA/FIFO trial-epochs ratio before the ASHA run.

Example::

    d = decisions("bench/recorded/asha_vs_fifo/bench-asha")
    assert d.mismatched == 0 and d.replayed == d.measured
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analysis import fidelity as F
from analysis import simulation as S
from analysis.load import load_results
from search.launch import EXPERIMENT_FILE
from search.simulate import RayRule, scheduler_settings


@dataclass(frozen=True)
class Decisions:
    measured: int  # the ASHA run's trial-epochs
    replayed: int  # Ray's ASHA rule fed the run's results in Ray's order
    mismatched: int  # trials whose replayed stop epoch differs from the real one
    trials: int
    start_s: float  # median start of a trial before its first epoch (F.start_overhead)

    def line(self) -> str:
        return (
            f"Ray's ASHA rule on the ASHA run's results in Ray's order: {self.replayed} "
            f"trial-epochs vs {self.measured} measured; {self.mismatched} of {self.trials} "
            f"trials decided differently (median trial start {self.start_s:.1f} s)"
        )


@dataclass(frozen=True)
class Prediction:
    measured: int  # the ASHA run's trial-epochs
    fifo: int  # the FIFO run's trial-epochs
    launch: int  # event replay of the FIFO curves in the real launch order, with start_s
    orders: np.ndarray  # the same over random orders
    slots: int

    def ratio(self, epochs: float) -> float:
        return float(epochs) / self.fifo

    def lines(self) -> list[str]:
        lo, hi = np.quantile(self.orders, [0.05, 0.95])
        r = self.ratio
        return [
            f"measured: ASHA {self.measured} / FIFO {self.fifo} trial-epochs = "
            f"{r(self.measured):.3f}",
            f"simulated from the FIFO curves, {self.slots} at once, the real launch order: "
            f"{self.launch} ({r(self.launch):.3f}); over {len(self.orders)} random orders: "
            f"mean {r(self.orders.mean()):.3f}, 5-95 % {r(lo):.3f}-{r(hi):.3f}",
        ]


def asha_settings(run: str | Path) -> Any:
    """The ASHA settings the run was swept with (its ``experiment.json``)."""
    raw = json.loads((Path(run) / EXPERIMENT_FILE).read_text())["raw"]["scheduler"]
    return scheduler_settings("asha", int(raw["grace_epochs"]), int(raw["reduction_factor"]),
                              int(raw["max_epochs"]))  # fmt: skip


def decisions(asha_run: str | Path, *, settings: Any = None) -> Decisions:
    """``settings``: other ASHA settings to decide with (default: the run's own)."""
    sched = settings or asha_settings(asha_run)
    arrivals = F.load_arrivals(asha_run)
    decided = F.replay_arrivals(arrivals, RayRule("asha", sched), max_epochs=sched.max_epochs)
    epochs = load_results([asha_run]).epochs
    return Decisions(
        measured=len(epochs), replayed=int(decided["predicted_epochs"].sum()),
        mismatched=int((decided["predicted_epochs"] != decided["epochs"]).sum()),
        trials=len(decided), start_s=F.start_overhead(arrivals, epochs),
    )  # fmt: skip


def prediction(asha_run: str | Path, fifo_run: str | Path, *, slots: int, start_s: float = 0.0,
               orders: int = 50, seed: int = 0) -> Prediction:  # fmt: skip
    """``slots``: trials at once in the real runs (2: 1 CPU each on 2); ``start_s``: seconds
    each trial starts before its first epoch (:attr:`Decisions.start_s` measures it)."""
    sched = asha_settings(asha_run)
    curves = S.load_curves([fifo_run])

    def replay(order: list[int]) -> int:
        out = S.run_cluster(curves, order, gpus=slots, rule=RayRule("asha", sched),
                            milestones=sched.rungs(), max_epochs=sched.max_epochs,
                            overhead_s=start_s)  # fmt: skip
        return out.trial_epochs

    rng = np.random.default_rng(seed)
    random_orders = [list(rng.permutation(len(curves))) for _ in range(orders)]
    return Prediction(
        measured=len(load_results([asha_run]).epochs),
        fifo=len(load_results([fifo_run]).epochs), launch=replay(F.launch_order(curves)),
        orders=np.array([replay(o) for o in random_orders]), slots=slots,
    )  # fmt: skip


@dataclass(frozen=True)
class Timed:
    measured: int
    replayed: int  # event replay of the run's own curves and epoch times, real launch order
    beyond: int  # trials the replay let past the last epoch the run recorded (unknown after)
    same_order: dict[int, float]  # per rung: share of trials in Ray's position at that rung
    start_s: float
    slots: int
    clock: str  # "trainable": the epoch times the trial recorded; "driver": as Ray saw them

    def line(self) -> str:
        orders = ", ".join(f"epoch {e}: {v:.2f}" for e, v in self.same_order.items())
        more = f" (+ {self.beyond} trial(s) continued past their record)" if self.beyond else ""
        return (
            f"event replay of the ASHA run's own curves, {self.clock} epoch times, "
            f"{self.slots} at once, trial start {self.start_s:.1f} s: {self.replayed}{more} "
            f"trial-epochs vs "
            f"{self.measured} measured; trials at Ray's position in each rung's arrival order: "
            f"{orders}"
        )


def timed(asha_run: str | Path, *, slots: int, start_s: float, clock: str = "trainable") -> Timed:
    """Can timing reproduce Ray's arrival order? The best case: the run's own epoch times,
    as the trial recorded them (``trainable``) or as Ray's driver saw them (``driver``: the
    time between results, trial starts included; then ``start_s`` should be 0)."""
    sched = asha_settings(asha_run)
    res = load_results([asha_run])
    arrivals = F.load_arrivals(asha_run)
    curves = F.run_curves(res)
    if clock == "driver":
        curves = F.driver_seconds(curves, arrivals)
    rule = F.Recorder(RayRule("asha", sched))
    out = S.run_cluster(curves, F.launch_order(curves), gpus=slots, rule=rule,
                        milestones=sched.rungs(), max_epochs=sched.max_epochs,
                        overhead_s=start_s)  # fmt: skip
    last = {i: (e, stop) for i, e, stop in rule.log}  # each trial's last answer
    beyond = sum(1 for e, stop in last.values() if e < sched.max_epochs and not stop)
    names = [n.split(":", 1)[1] for n in curves.names]
    same = {}
    for rung in sched.rungs():
        real = F.rung_order(arrivals, rung)
        sim = [names[i] for i, e, _ in rule.log if e == rung]
        same[rung] = float(np.mean([a == b for a, b in zip(real, sim, strict=False)] or [np.nan]))
    return Timed(measured=len(res.epochs), replayed=out.trial_epochs, beyond=beyond,
                 same_order=same, start_s=start_s, slots=slots, clock=clock)  # fmt: skip


def report_lines(asha_run: Path, fifo_run: Path, *, slots: int, orders: int) -> list[str]:
    """Both checks' lines (the prediction only where the FIFO run is there), the prediction
    without and with the measured trial start."""
    d = decisions(asha_run)
    lines = [d.line()]
    lines += [timed(asha_run, slots=slots, start_s=t).line() for t in (0.0, d.start_s)]
    lines.append(timed(asha_run, slots=slots, start_s=0.0, clock="driver").line())
    if not (Path(fifo_run) / "epochs.parquet").is_file():
        return [*lines, f"no FIFO run in {fifo_run}: the prediction from its curves is unchecked"]
    for start_s in (0.0, d.start_s):
        lines.append(f"with a trial start of {start_s:.1f} s:")
        p = prediction(asha_run, fifo_run, slots=slots, start_s=start_s, orders=orders)
        lines += [f"  {line}" for line in p.lines()]
    return lines
