"""``microsweep simulate``: FIFO against ASHA settings on replayed learning curves.

Many trial orders per setting are replayed on a simulated clock (:func:`analysis.simulation.
run_cluster`) whose stop decisions are made by Ray Tune's own scheduler objects
(``ASHAScheduler``/``FIFOScheduler`` from :mod:`search.strategies`, fed the results a trial would
report; no Ray runtime). With ``ray=True`` one ASHA setting is also run for real: the ``replay``
task under the normal launcher (:func:`search.launch.run_sweep`), with fake GPUs, the real
search algorithm, resource packing and checkpoint uploads, and compared with the replay.

Example::

    result = simulate(SimulateSettings(runs=("runs/super1",), trials=1000, gpus=64))
    print(result.quote)   # ASHA (grace 2, eta 3) keeps 0.99 of the best ... at 0.25 of the epochs
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import simulation as S
from analysis import simulation_report as SR
from core import keys as K
from core import storage
from core.errors import UserError
from core.storage import Location
from search.progress import Printer, stderr_line
from search.strategies import get_scheduler

SIM_DIR = "simulation"  # default output folder, inside the first run folder (quoted by --dry-run)


@dataclass(frozen=True)
class SimulateSettings:
    runs: tuple[str, ...]
    trials: int | None = None  # None: as many as recorded
    gpus: int = 8
    graces: tuple[int, ...] = (1, 2)
    etas: tuple[int, ...] = (2, 3, 4)
    orders: int = 20
    max_epochs: int | None = None  # None: the longest recorded curve
    speedup: float = 100.0  # the Ray replay sleeps epoch time / speedup
    checkpoint_mb: float | None = None  # None: the recorded model's size (fp32 parameters)
    ray: bool = False  # also run the first ASHA setting (order 0) through Ray Tune
    seed: int = 0
    out: str | None = None  # None: RUN/simulation
    start_s: float = 0.0  # a trial's start before its first epoch (worker start, imports)

    def check(self) -> None:
        for name in ("gpus", "orders"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name} must be >= 1, but got {getattr(self, name)}")
        if self.trials is not None and self.trials < 2:
            raise UserError(f"--trials must be >= 2, but got {self.trials}")
        if any(g < 1 for g in self.graces) or any(e < 2 for e in self.etas):
            raise UserError(
                f"--grace must be >= 1 and --eta >= 2, but got {self.graces}, {self.etas}"
            )
        if self.max_epochs is not None and self.max_epochs < 1:
            raise UserError(f"--max-epochs must be >= 1, but got {self.max_epochs}")
        if self.speedup <= 0:
            raise UserError(f"--speedup must be > 0, but got {self.speedup}")
        if self.start_s < 0:
            raise UserError(f"--start-s must be >= 0, but got {self.start_s}")


@dataclass
class SimulationResult:
    rows: pd.DataFrame  # simulation.parquet
    summary: pd.DataFrame
    rho: dict[int, float]
    recommended: pd.Series | None
    quote: str | None
    out: Location
    ray: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Trial:  # what Ray's schedulers read of a trial
    trial_id: str


class RayRule:
    """Ray Tune's scheduler object for one setting, asked as the controller would ask it."""

    def __init__(self, name: str, scheduler: Any) -> None:
        self.sched = get_scheduler(name).ray_scheduler(scheduler, metric=K.VAL_IOU, mode="max")
        self.sched.set_search_properties(K.VAL_IOU, "max")
        self.trials: dict[int, _Trial] = {}

    def _result(self, epoch: int, value: float) -> dict[str, Any]:
        return {"training_iteration": epoch, K.VAL_IOU: value}

    def add(self, trial: int) -> None:
        self.trials[trial] = _Trial(f"t{trial:06d}")
        self.sched.on_trial_add(None, self.trials[trial])

    def result(self, trial: int, epoch: int, value: float) -> bool:
        action = self.sched.on_trial_result(None, self.trials[trial], self._result(epoch, value))
        return action == "STOP"

    def complete(self, trial: int, epoch: int, value: float) -> None:
        self.sched.on_trial_complete(None, self.trials.pop(trial), self._result(epoch, value))


def scheduler_settings(name: str, grace: int, eta: int, max_epochs: int) -> Any:
    from search.experiment import SchedulerSettings

    return SchedulerSettings(name, max_epochs, min(grace, max_epochs), eta)


def settings_grid(s: SimulateSettings, max_epochs: int) -> list[tuple[str, Any]]:
    out = [("fifo", scheduler_settings("fifo", 1, 2, max_epochs))]
    for grace in s.graces:
        for eta in s.etas:
            out.append(
                (f"asha g{grace} e{eta}", scheduler_settings("asha", grace, eta, max_epochs))
            )
    return out


def replay_orders(
    trials: S.Curves,
    settings: list[tuple[str, Any]],
    *,
    gpus: int,
    orders: list[list[int]],
    start_s: float = 0.0,
) -> pd.DataFrame:
    """Every setting on every order, on the simulated clock; one row each."""
    rows = []
    for k, order in enumerate(orders):
        for label, sched in settings:
            rule = RayRule(sched.name, sched)
            out = S.run_cluster(
                trials,
                order,
                gpus=gpus,
                rule=rule,
                milestones=sched.rungs(),
                max_epochs=sched.max_epochs,
                overhead_s=start_s,
            )
            rows.append(_row(label, sched, k, out, path="event"))
    return pd.DataFrame(rows)


def _row(label: str, sched: Any, order: int, out: S.Outcome, *, path: str) -> dict[str, Any]:
    asha = sched.name != S.FIFO
    return {
        S.SETTING: label,
        S.SCHEDULER: sched.name,
        S.GRACE: sched.grace_epochs if asha else None,
        S.ETA: sched.reduction_factor if asha else None,
        S.ORDER: order,
        S.PATH: path,
        S.BEST: out.best,
        S.TRIAL_EPOCHS: out.trial_epochs,
        S.WALL: out.wall_s,
        S.BUSY: out.busy_s,
        S.GPUS: out.gpus,
        S.UTIL: out.utilisation,
        S.STOPPED: int(out.stopped.sum()),
    }


def checkpoint_bytes(runs: Sequence[str], mb: float | None) -> int:
    """``mb`` megabytes, else fp32 parameters of the runs' most common decoder/encoder pair
    (1 MB when the runs do not name one)."""
    if mb is not None:
        return max(1, int(mb * 1e6))
    from analysis.load import load_runs

    trials = load_runs(runs)
    if not {"decoder", "encoder"} <= set(trials.columns):
        return 1_000_000
    decoder, encoder = trials.groupby(["decoder", "encoder"]).size().idxmax()
    try:
        from trainables.models import create_model

        model = create_model(decoder=str(decoder), encoder=str(encoder), num_classes=2)
    except Exception:  # an unbuildable recorded pair only costs the estimate
        return 1_000_000
    return 4 * sum(p.numel() for p in model.parameters())


def simulate(s: SimulateSettings, *, printer: Printer = stderr_line) -> SimulationResult:
    """Load, draw, replay every setting on every order, optionally run Ray, write the files."""
    s.check()
    curves = S.load_curves(s.runs)
    max_epochs = s.max_epochs or curves.max_epochs
    rng = np.random.default_rng(s.seed)
    trials = S.draw_trials(curves, s.trials or len(curves), rng=rng)
    orders = [list(range(len(trials)))] + [
        list(rng.permutation(len(trials))) for _ in range(s.orders - 1)
    ]
    grid = settings_grid(s, max_epochs)
    printer(
        f"simulate: {len(trials)} trials from {len(curves)} recorded curves "
        f"({curves.skipped} left out), {len(grid)} settings x {s.orders} orders on {s.gpus} GPUs"
    )
    t0 = time.monotonic()
    rows = replay_orders(trials, grid, gpus=s.gpus, orders=orders, start_s=s.start_s)
    printer(f"simulate: {len(rows)} replays in {time.monotonic() - t0:.1f} s")
    ray_info: dict[str, Any] = {}
    if s.ray and len(grid) > 1:
        ray_info = ray_replay(trials, grid[1], orders[0], s, max_epochs, printer=printer)
        rows = pd.concat([rows, pd.DataFrame([ray_info.pop("row")])], ignore_index=True)
    rows = S.with_ratios(rows)
    summary = S.summarise(rows)
    rungs = sorted({e for _, sc in grid for e in sc.rungs()})
    rho = {e: S.rank_correlation(curves, e) for e in rungs}
    rec = S.recommend(summary)
    out = Location.parse(s.out) if s.out else Location.parse(s.runs[0]) / SIM_DIR
    meta = {"trials": len(trials), "recorded": len(curves), "skipped": curves.skipped,
            "seed_sd": S.seed_noise(curves), "gpus": s.gpus, "orders": s.orders,
            "max_epochs": max_epochs}  # fmt: skip
    _write(out, rows, summary, rho, meta, rec, ray_info)
    quote = S.quote_line(summary, grace=None, eta=None)
    return SimulationResult(rows, summary, rho, rec, quote, out, ray_info)


def _write(out, rows, summary, rho, meta, rec, ray_info) -> None:
    storage.write_parquet(out / S.SIMULATION_FILE, pa.Table.from_pandas(rows, preserve_index=False))
    storage.write_bytes(out / "simulation.png", SR.figure(summary))
    lines = ray_info.get("lines", [])
    text = SR.section(summary, rho=rho, meta=meta, recommended=rec, ray_lines=lines)
    storage.write_bytes(out / "simulation.md", text.encode())
    storage.write_json(out / "simulation.json", {**meta, "rank_correlation": rho,
                       "recommendation": SR.recommendation_line(rec), "ray": lines})  # fmt: skip


# ------------------------------------------------------------------------- the real Ray path
def write_curves(path: Path, trials: S.Curves, size: int) -> None:
    from trainables.replay import CHECKPOINT_BYTES, CURVE, EPOCH_S

    cols: dict[str, list] = {CURVE: [], K.EPOCH: [], K.VAL_IOU: [], EPOCH_S: []}
    for i, (v, sec) in enumerate(zip(trials.val, trials.epoch_s, strict=True)):
        cols[CURVE] += [i] * len(v)
        cols[K.EPOCH] += list(range(1, len(v) + 1))
        cols[K.VAL_IOU] += v.tolist()
        cols[EPOCH_S] += sec[: len(v)].tolist()
    cols[CHECKPOINT_BYTES] = [size] * len(cols[CURVE])
    storage.write_parquet(path, pa.table(cols))


def replay_experiment(workdir: Path, order: list[int], sched: Any, s: SimulateSettings) -> Any:
    """A ``replay`` experiment that launches the curves in ``order`` (the grid strategy
    shuffles its points with ``search.seed``: the inverse shuffle is applied first)."""
    from search.experiment import parse_experiment

    perm = list(range(len(order)))
    random.Random(0).shuffle(perm)
    points = [0] * len(order)
    for k, p in enumerate(perm):
        points[p] = int(order[k])
    raw = {
        "name": f"replay-{sched.name}", "kind": "replay",
        "data": {"curves": str(workdir / "curves.parquet")},
        "space": {"curve": points},
        "search": {"algorithm": "grid", "seed": 0},  # --gpus bounds the concurrency
        "scheduler": {"name": sched.name, "max_epochs": sched.max_epochs,
                      "grace_epochs": sched.grace_epochs,
                      "reduction_factor": sched.reduction_factor},
        "train": {"speedup": s.speedup},
        "resources": {"cpu": 1, "gpu": 1},
        # Ray forces an experiment snapshot whenever a trial has written `checkpoints_to_keep`
        # checkpoints since the last one: with 1, one snapshot of every trial's state per
        # checkpoint (O(trials) each). The sweep default, 2, as a real sweep has it.
        "fault": {"max_failures": 0, "checkpoints_to_keep": 2},
        "storage": str(workdir / "runs"),
    }  # fmt: skip
    return parse_experiment(raw, base_dir=workdir)


# Ray settings of the replay's driver that change no scheduling decision
RAY_REPLAY_ENV = {
    # Ray's result.json / progress.csv / TensorBoard files per trial: a replay reads only our
    # own record (epochs.parquet), and TensorBoard's fsync per result cost 10 % of the driver
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
}


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_replay(
    trials: S.Curves,
    setting: tuple[str, Any],
    order: list[int],
    s: SimulateSettings,
    max_epochs: int,
    *,
    printer: Printer,
) -> dict[str, Any]:
    """Run one setting through Ray Tune (fake GPUs) and compare it with the replay."""
    import ray

    from search.launch import run_sweep, start_ray

    label, sched = setting
    ours = not ray.is_initialized()  # a Ray the caller started stays up
    start_ray(None, num_cpus=s.gpus, num_gpus=s.gpus)
    with tempfile.TemporaryDirectory(prefix="microsweep-simulate-") as tmp:
        work = Path(tmp)
        size = checkpoint_bytes(s.runs, s.checkpoint_mb)
        write_curves(work / "curves.parquet", trials, size)
        exp = replay_experiment(work, order, sched, s)
        t0 = time.monotonic()
        with contextlib.redirect_stdout(io.StringIO()), _env(RAY_REPLAY_ENV):
            result = run_sweep(exp, printer=lambda line: None)
        wall = time.monotonic() - t0
        launched = ray_order(result.trials)
        epochs = (exp.run_dir / "epochs.parquet").read_table().to_pandas()
        if ours:  # before its log folder goes: Ray's log printer would say it is missing
            ray.shutdown()
    event = S.run_cluster(
        trials, launched, gpus=s.gpus, rule=RayRule(sched.name, sched),
        milestones=sched.rungs(), max_epochs=max_epochs,
    )  # fmt: skip
    ideal = event.wall_s / s.speedup
    overhead = max(0.0, wall - ideal) * s.gpus / len(trials)
    stopped = sum(1 for t in result.trials if t.get("status") == "stopped")
    ray = S.Outcome(
        best=float(epochs[K.VAL_IOU].max()), trial_epochs=len(epochs), wall_s=float("nan"),
        busy_s=float("nan"), gpus=s.gpus, epochs=np.zeros(0), stopped=np.ones(stopped, bool),
    )  # fmt: skip  # wall time: the real seconds are in the lines (Ray's overhead is not sped up)
    row = _row(label, sched, 0, ray, path="ray")
    lines = [
        f"{label}, {len(trials)} trials on {s.gpus} fake GPUs, speedup {s.speedup:g}, "
        f"checkpoints of {size / 1e6:.2f} MB: {wall:.0f} s real wall time",
        f"trial-epochs: Ray {len(epochs)}, replay of the same order {event.trial_epochs} "
        f"(ratio {len(epochs) / max(1, event.trial_epochs):.3f})",
        f"Ray's overhead per trial: {overhead:.2f} s of a slot (wall time beyond the replayed "
        f"epoch time {ideal:.0f} s)",
    ]
    for line in lines:
        printer(f"simulate: ray: {line}")
    return {"row": row, "lines": lines, "wall_s": wall, "overhead_s": overhead,
            "trial_epochs": len(epochs), "event_trial_epochs": event.trial_epochs}  # fmt: skip


def ray_order(rows: list[dict[str, Any]]) -> list[int]:
    """The curves in the order Ray created their trials (the trial id's counter)."""
    trained = [r for r in rows if r.get("curve") is not None]
    return [int(r["curve"]) for r in sorted(trained, key=lambda r: r["trial"].rsplit("_", 1)[-1])]


def quote_for(run_dir: Any, *, grace: int | None = None, eta: int | None = None) -> str | None:
    """``simulated on your last run: ASHA (grace 2, eta 3) keeps 0.99 of the best ...``, when
    ``RUN/simulation/simulation.parquet`` exists (None otherwise, or when it cannot be read)."""
    path = Location.parse(run_dir) / SIM_DIR / S.SIMULATION_FILE
    try:
        if not path.is_file():
            return None
        line = S.quote_line(S.summarise(path.read_table().to_pandas()), grace=grace, eta=eta)
    except Exception:  # an old or unreadable file only costs the quote
        return None
    return f"simulated on your last run: {line}" if line else None


def plan_quote(exp: Any) -> str | None:
    """The dry-run's line for ``exp`` (its scheduler's grace and eta) from its run folder."""
    sched = exp.scheduler
    if sched.name == S.FIFO:
        return quote_for(exp.run_dir)
    return quote_for(exp.run_dir, grace=sched.grace_epochs, eta=sched.reduction_factor)
