"""Stop a sweep, resumably and in one line, when its storage fails: a full local disk, an
object store that cannot be reached.

Left alone, both make Ray fail a trial's checkpoint upload (``No space left on device``,
``AWS Error NETWORK_CONNECTION``) and retry it ``fault.max_failures`` times, each retry
restoring from storage that may still be down, until it is errored for good (our record keeps
it as ``error``), while Ray's state snapshots and our result files stop being written.
:class:`StorageGuard` ends the sweep the way a killed driver does (Ray's state and every
complete checkpoint stay; ``--resume`` continues each unfinished trial from its newest complete
checkpoint), with one line naming the storage and what to do. On a local disk it does so
*before* the disk is full: when the free space falls below what the next checkpoints need. It
comes before the results writer among Ray's callbacks, so that a trial failed by storage is
never recorded as errored. See docs/faults.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ray import tune

from core.errors import StorageError
from core.storage import Location
from search.results_writer import error_line

RESERVE = 4 << 20  # bytes kept free besides checkpoints: Ray's state, our Parquet files
NO_SPACE = "No space left on device"  # strerror(ENOSPC), in a trial's error
# pyarrow's S3 errors when the endpoint does not answer (as a trial's error.txt ends)
UNREACHABLE = ("AWS Error NETWORK_CONNECTION", "curlCode: 7", "Couldn't connect to server")


_failures: list[str] = []  # lines of guards that stopped a sweep in this (the driver's) process


class StorageFailed(StorageError):
    """The run folder's storage failed the sweep; it can be resumed once it is back."""


@contextlib.contextmanager
def storage_failures() -> Iterator[None]:
    """Around ``Tuner.fit``: raises the :class:`StorageFailed` of a guard that stopped the sweep,
    once ``fit`` returned or raised (whatever Ray wrapped the guard's exception in)."""
    del _failures[:]
    try:
        yield
    except Exception:
        if _failures:
            raise StorageFailed(_failures[0]) from None
        raise
    if _failures:
        raise StorageFailed(_failures[0])


class StorageGuard(tune.Callback):
    """Stops the sweep at the first trial failure caused by a full or unreachable storage
    (before Ray retries it), or, on a local disk, when the free space under ``run_dir`` falls
    below what the running trials' next checkpoints need (the largest checkpoint seen so far,
    per running trial and one more) plus :data:`RESERVE`.

    It stops as Ctrl+C does (``SIGUSR1``, which Tune handles in the driver: the loop ends and
    Ray's state is saved with every checkpoint known, so ``--resume`` continues each trial
    from its newest one); :func:`storage_failures` then raises the one line. A trial that
    failed for good is stopped on at once, by raising, so that it is never recorded."""

    def __init__(self, run_dir: str, *, reserve: int = RESERVE) -> None:
        self.run_dir, self.reserve = str(run_dir), reserve
        self.largest = 0

    @property
    def watched(self) -> bool:
        return not Location.parse(self.run_dir).is_uri

    def setup(self, **info: Any) -> None:
        self.largest = 0

    def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info):
        path = getattr(checkpoint, "path", None)
        if self.watched and path and os.path.isdir(path):
            self.largest = max(self.largest, _size(Path(path)))
        self._check(trials)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        self._check(trials)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        # before Ray's retry runs: a retry while the storage is down may restore a checkpoint
        # that reads as empty and fail for good (seen with S3 down for 30 s)
        self._failed_by_storage(trials, trial, now=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._failed_by_storage(trials, trial, now=True)  # before the writer records it

    def _failed_by_storage(self, trials: list, trial: Any, *, now: bool) -> None:
        error = error_line(trial)
        if NO_SPACE in error and self.watched:
            _stop(self._line(self._free(), self._needed(trials)), now=now)
        elif any(s in error for s in UNREACHABLE):
            _stop(
                f"storage '{self.run_dir}' is unreachable ({error}); the sweep stopped with "
                "every complete checkpoint kept: run the same command with --resume once it "
                "answers again",
                now=now,
            )

    def _check(self, trials: list) -> None:
        if not self.watched:
            return
        free, needed = self._free(), self._needed(trials)
        if free < needed:
            _stop(self._line(free, needed))

    def _needed(self, trials: list) -> int:
        running = sum(1 for t in trials if getattr(t, "status", None) == "RUNNING")
        return self.largest * (running + 1) + self.reserve

    def _free(self) -> int:
        folder = Path(self.run_dir)
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    def _line(self, free: int, needed: int) -> str:
        return (
            f"storage '{self.run_dir}': disk almost full ({_mb(free)} free, the next "
            f"checkpoints need {_mb(needed)}); the sweep stopped with every complete "
            "checkpoint kept: free space there, then run the same command with --resume"
        )


def _stop(line: str, *, now: bool = False) -> None:
    """End the sweep: gracefully (Tune's ``SIGUSR1``) where Tune listens for it, else by
    raising (``now``, or not in the driver's main thread)."""
    first = not _failures
    if first:
        _failures.append(line)
    if now or not _interrupt(first):
        raise StorageFailed(line)


def _interrupt(first: bool) -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False
    if signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.SIG_IGN, None):
        return False  # not inside Tune's loop
    if first:
        os.kill(os.getpid(), signal.SIGUSR1)
    return True


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB"
