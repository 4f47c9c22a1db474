"""A console people can read: one live progress line, one line per trial end or failure.

:class:`Console` is a Ray Tune callback (Ray's ProgressReporter only draws Ray's own tables;
a callback sees every trial event, and the driver calls it in its main thread). On a TTY
(a terminal, tmux) it keeps one line current, redrawn at most once a second; when stdout is
not a TTY (CI logs, ``| tee``) it prints plain progress lines at most every ``interval_s``.
The line and ``microsweep status`` share analysis.status's :class:`Snapshot` and formatting.

:func:`ray_output` sends Ray's own output (driver logs and warnings, worker stdout/stderr that
``log_to_driver`` forwards, anything written to file descriptors 1 and 2) to
``RUN/logs/ray-{UTC time}.log`` for the time of the run; the console keeps the terminal. For a
run folder on an object store (``s3://``) the log is written to a local file
(``$TMPDIR/microsweep-logs/``) and uploaded to ``RUN/logs/`` when the run ends.
``verbose=True`` (``microsweep sweep -v``) leaves Ray's output on the terminal, as before.

Example (what search.launch does for every sweep)::

    console = Console(total_trials=plan.trials, trial_epochs=plan.asha_epochs,
                      metric="val_iou", factors=["decoder", "init"])
    with ray_output(run_dir, verbose=False):
        start_ray(None)
        tune.Tuner(fn, run_config=tune.RunConfig(verbose=ray_verbosity(),
                                                 callbacks=[console])).fit()
"""

from __future__ import annotations

import contextlib
import datetime
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from ray import tune

from analysis import results as R
from analysis.status import FAILED, Best, Failure, Snapshot, describe, progress_line
from core import keys as K
from core import storage
from core.errors import StorageError
from core.storage import Location
from search.results_writer import error_line, status_from, track_state, trial_name

# (terminal stream, verbose) of the ray_output context in effect; empty: nothing routed
_ROUTES: list[tuple[TextIO, bool]] = []
TTY_REFRESH_S = 1.0
PLAIN_INTERVAL_S = 60.0


def terminal() -> TextIO:
    """Where the console writes: the real stdout, also while Ray's output is routed away."""
    return _ROUTES[-1][0] if _ROUTES else sys.stdout


def ray_verbosity() -> int:
    """``RunConfig(verbose=...)``: Ray's tables only where Ray's output is not routed away."""
    return 0 if _ROUTES and not _ROUTES[-1][1] else 1


class Console(tune.Callback):
    """Progress of a sweep on ``out`` (default: :func:`terminal`, resolved when printing)."""

    def __init__(
        self,
        *,
        total_trials: int | None,
        trial_epochs: int | None,
        metric: str = R.VAL_IOU,
        mode: str = "max",
        factors: list[str] | tuple[str, ...] = (),
        out: TextIO | None = None,
        tty: bool | None = None,
        interval_s: float = PLAIN_INTERVAL_S,
    ) -> None:
        self.total_trials = total_trials
        self.trial_epochs = trial_epochs
        self.metric, self.sign = metric, (1 if mode == "max" else -1)
        self.factors = list(factors)
        self.out, self.tty, self.interval_s = out, tty, interval_s
        self._reset()

    @classmethod
    def for_plan(cls, plan: Any, *, metric: str, **options: Any) -> Console:
        """The console of a sweep's plan: its trials, trial-epochs and varying factors."""
        from spaces.dimensions import Fixed

        space = plan.experiment.space
        factors = [k for k, d in space.items() if not isinstance(d, Fixed)]
        return cls(total_trials=plan.trials, trial_epochs=plan.asha_epochs, metric=metric,
                   factors=factors, **options)  # fmt: skip

    def _reset(self) -> None:
        self._start = time.monotonic()
        self._state: dict[str, dict[str, Any]] = {}  # trial -> folded reports (results_writer)
        self._epochs: dict[str, tuple[int, float | None]] = {}  # trial -> (epoch, last metric)
        self._done_epochs: set[tuple[str, int]] = set()
        self._ended: dict[str, str] = {}  # trial -> status
        self._failures: list[Failure] = []
        self._best: Best | None = None
        self._trials: list[Any] = []
        self._seen_earlier: set[str] = set()  # trials that ended before a resume
        self._last_draw = -math.inf
        self._live = False

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles callbacks into tuner.pkl
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "out"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, out=None)
        self._reset()

    # ------------------------------------------------------------------ Ray's hooks
    def setup(self, **info: Any) -> None:
        self._reset()
        planned = f"{self.total_trials} trials" if self.total_trials is not None else "trials"
        epochs = f", ~{self.trial_epochs} trial-epochs planned" if self.trial_epochs else ""
        self._emit(f"sweep: {planned}{epochs}; best by {self.metric}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict,
                        **info: Any) -> None:  # fmt: skip
        name = trial_name(trial)
        track_state(self._state.setdefault(name, {}), result)
        value = _finite(result.get(self.metric))
        if value is None and R.TRAIN_LOSS not in result:
            return  # not an epoch (diverged, infeasible, Ray's end marker)
        epoch = int(result.get(R.EPOCH, result.get("training_iteration", 0)))
        self._done_epochs.add((name, epoch))
        self._epochs[name] = (epoch, value)
        self._consider(trial, value)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = trial_name(trial)
        state = self._state.get(name, {})
        status = status_from(state)
        reason = state.get("error") if status in (*FAILED, R.INFEASIBLE) else None
        self._end(name, status, reason or "no reason reported")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial_name(trial), R.ERRORED, error_line(trial))

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._see(trials)
        self._draw()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._see(trials)
        self._draw(final=True)

    # ------------------------------------------------------------------ state -> lines
    def _see(self, trials: list) -> None:
        """Keep Ray's trial list; trials that ended before a resume count for the best too
        (their last result is restored with them)."""
        self._trials = trials
        for trial in self._ended_before():
            if trial_name(trial) not in self._seen_earlier:
                self._seen_earlier.add(trial_name(trial))
                last = getattr(trial, "last_result", None) or {}
                best = last.get(K.BEST_VAL_IOU) if self.metric == R.VAL_IOU else None
                self._consider(trial, _finite(last.get(self.metric) if best is None else best))

    def _ended_before(self) -> list[Any]:
        """The trials Ray lists as ended that this console did not see end (a resume's)."""
        return [
            t for t in self._trials
            if getattr(t, "status", None) in ("TERMINATED", "ERROR")
            and trial_name(t) not in self._ended
        ]  # fmt: skip

    def _consider(self, trial: Any, value: float | None) -> None:
        if value is not None and (self._best is None or self.sign * (value - self._best.value) > 0):
            name = trial_name(trial)
            self._best = Best(name, value, describe(trial.config, self.factors, name))

    def _end(self, name: str, status: str, reason: str) -> None:
        epoch, value = self._epochs.pop(name, (0, None))
        self._ended[name] = status
        best = self._state.get(name, {}).get(K.BEST_VAL_IOU) if self.metric == R.VAL_IOU else None
        value = _finite(best) if best is not None else value
        shown = "-" if value is None else f"{value:.4f}"
        plural = "epoch" if epoch == 1 else "epochs"
        if status in FAILED or status == R.INFEASIBLE:
            self._failures.append(Failure(name, status, epoch, reason))
            self._emit(f"FAILED {status:<9} {name}  after {epoch} {plural}: {reason}")
        else:
            self._emit(f"ended  {status:<9} {name}  {epoch} {plural}  {self.metric} {shown}")
        self._draw(force=True)

    def snapshot(self) -> Snapshot:
        """The sweep as this console has seen it (the same shape ``microsweep status`` reads)."""
        counts: dict[str, int] = {}
        for status in self._ended.values():
            counts[status] = counts.get(status, 0) + 1
        live = [t for t in self._trials if getattr(t, "status", None) == "RUNNING"]
        running = {trial_name(t): self._epochs.get(trial_name(t), (0, None)) for t in live}
        return Snapshot(
            metric=self.metric,
            planned_trials=self.total_trials,
            planned_epochs=self.trial_epochs,
            counts=counts,
            running=running,
            epochs_done=len(self._done_epochs),
            elapsed_s=time.monotonic() - self._start,
            best=self._best,
            failures=tuple(self._failures),
            earlier=len(self._ended_before()),
        )

    def _stream(self) -> TextIO:
        return self.out or terminal()

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        if _ROUTES and _ROUTES[-1][1]:
            return False  # -v: Ray prints between our lines; a live line would be torn
        return bool(getattr(self._stream(), "isatty", lambda: False)())

    def _emit(self, line: str) -> None:
        """A line of its own (an event); the live line is redrawn below it."""
        out = self._stream()
        out.write(("\r\x1b[2K" if self._live else "") + line + "\n")
        out.flush()
        self._live = False

    def _draw(self, *, force: bool = False, final: bool = False) -> None:
        now = time.monotonic()
        tty = self._is_tty()
        wait = TTY_REFRESH_S if tty else self.interval_s
        if not (final or (force and tty) or now - self._last_draw >= wait):
            return
        self._last_draw = now
        line = progress_line(self.snapshot())
        out = self._stream()
        if tty and not final:
            out.write("\r\x1b[2K" + line[: _width(out) - 1])
            self._live = True
        else:
            out.write(("\r\x1b[2K" if self._live else "") + line + "\n")
            self._live = False
        out.flush()


def _width(out: TextIO) -> int:
    try:
        return os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 120


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


@contextlib.contextmanager
def ray_output(run_dir: str | Location, *, verbose: bool = False) -> Iterator[Path | None]:
    """Route Ray's output to ``RUN/logs/ray-{time}.log`` while the block runs (see module doc).

    Yields the local log file (None with ``verbose``); :func:`terminal` is the real stdout.
    """
    _unpark_worker_logs()
    if verbose:
        _ROUTES.append((sys.stdout, True))
        try:
            yield None
        finally:
            _ROUTES.pop()
        return
    run = Location.parse(run_dir)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = run / R.LOGS_DIR / f"ray-{stamp}.log"
    local = Path(tempfile.gettempdir(), "microsweep-logs", f"{run.name}-{stamp}.log")
    path = local if run.is_uri else Path(target.fs_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    log = open(path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    with log, _redirected(log) as term:
        print(f"Ray's output: {target} (-v shows it here)", file=term, flush=True)
        _ROUTES.append((term, False))
        try:
            yield path
        finally:
            _ROUTES.pop()
            _park_worker_logs(path)
    if run.is_uri:
        try:
            storage.write_bytes(target, path.read_bytes())
        except StorageError as err:
            print(f"microsweep: warning: Ray's log stays in {path} ({err})", file=sys.stderr)


@contextlib.contextmanager
def _redirected(log: TextIO) -> Iterator[TextIO]:
    """sys.stdout/sys.stderr and file descriptors 1/2 to ``log``; yields the old stdout.

    The descriptors are the process's own, whatever ``sys.stdout`` is: C++ code and Ray's
    log forwarding write there too."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved: dict[int, int] = {}  # standard fd -> its duplicate, to restore
    for fd in (1, 2):
        with contextlib.suppress(OSError):  # a closed descriptor stays closed
            saved[fd] = os.dup(fd)
    enc = getattr(sys.stdout, "encoding", None) or "utf-8"
    if _fileno(sys.stdout) == 1 and 1 in saved:
        term = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding=enc)
    else:  # stdout is not fd 1 (e.g. captured by a test harness): it keeps its own target
        term = sys.stdout
    old = sys.stdout, sys.stderr
    for fd in saved:
        os.dup2(log.fileno(), fd)
    sys.stdout = sys.stderr = log
    try:
        yield term
    finally:
        log.flush()
        sys.stdout, sys.stderr = old
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)
        if term is not old[0]:
            term.close()


def _fileno(stream: Any) -> int | None:
    try:
        return stream.fileno()
    except (AttributeError, OSError, ValueError):
        return None


# Ray keeps forwarding worker output after the block (lines that arrive late, deduplicated
# ones flushed on a timer) until it shuts down. Its forwarding handler ("ray_print_logs" on
# ray._private.ray_logging's dispatcher, added by ray.init(log_to_driver=True)) is parked and
# a handler appending to the run's log takes its place; the next ray_output puts it back.
# Two more ways past the dispatcher reached the terminal after a sweep: the lines Ray's
# deduplication holds back ("[repeated 2x across cluster]"), which ray.shutdown (at exit)
# prints to sys.stdout; and the raylet's messages ("A worker died ..."), which Ray's error
# listener thread prints with ray._private.worker.print_to_stdstream. The held-back lines are
# flushed into the log when parking, and print_to_stdstream is parked too.
_RAY_HANDLER, _OURS = "ray_print_logs", "microsweep_worker_logs"
_PARKED: list[Any] = []
_PARKED_PRINT: list[Any] = []  # Ray's print_to_stdstream while ours stands in


def _dispatcher() -> Any:
    module = sys.modules.get("ray._private.ray_logging")
    return getattr(module, "global_worker_stdstream_dispatcher", None)


def _park_worker_logs(path: Path) -> None:
    dispatcher = _dispatcher()
    if dispatcher is None:
        return
    ray_handlers = [h for name, h in dispatcher.handlers if name == _RAY_HANDLER]
    if not ray_handlers:
        return
    from ray._private import worker as ray_worker

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        try:
            with open(path, "a", encoding="utf-8", errors="replace") as log:
                ray_worker.print_worker_logs(data, log, ignore_prefix)
        except OSError:  # the run folder is gone (a temporary one, removed): nobody reads it
            pass

    dispatcher.remove_handler(_RAY_HANDLER)
    _PARKED[:] = ray_handlers
    dispatcher.add_handler(_OURS, to_log)
    for dedup in (ray_worker.stdout_deduplicator, ray_worker.stderr_deduplicator):
        for held in dedup.flush():
            to_log(held)
    if not _PARKED_PRINT:
        _PARKED_PRINT.append(ray_worker.print_to_stdstream)
    ray_worker.print_to_stdstream = to_log


def _unpark_worker_logs() -> None:
    dispatcher = _dispatcher()
    if dispatcher is None or not _PARKED:
        return
    dispatcher.remove_handler(_OURS)
    for handler in _PARKED:
        dispatcher.add_handler(_RAY_HANDLER, handler)
    _PARKED.clear()
    if _PARKED_PRINT:
        from ray._private import worker as ray_worker

        ray_worker.print_to_stdstream = _PARKED_PRINT.pop()
