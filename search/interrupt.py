"""A sweep stopped before its trials ended (Ctrl+C, or SIGUSR1 from outside) says so.

Tune catches the first Ctrl+C, saves its state and returns from ``Tuner.fit`` as if the sweep
had ended; the unfinished trials are simply not in ``trials.parquet``. Without this, such a
run read as "no trial trained" (or as a success with fewer trials). :class:`EndWatch` sees the
trials' states when Tune ends the experiment; :func:`search.launch.run_sweep` then raises
:class:`Interrupted` (the CLI exits 130) after the results are written, so nothing is lost and
``--resume`` continues.
"""

from __future__ import annotations

from typing import Any

from ray import tune

from core.errors import Interrupted


class EndWatch(tune.Callback):
    """Counts the trials that had not ended when Tune ended the experiment."""

    def __init__(self) -> None:
        self.unfinished: int | None = None  # None: Tune did not end the experiment (yet)
        self.total = 0

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        ended = ("TERMINATED", "ERROR")
        self.total = len(trials)
        self.unfinished = sum(t.status not in ended for t in trials)

    def check(self) -> None:
        """Raise :class:`Interrupted` when trials were left unfinished."""
        if self.unfinished:
            raise Interrupted(
                f"interrupted: {self.unfinished} of {self.total} trial(s) had not ended (their "
                "newest checkpoints are kept); run the same command with --resume to continue"
            )
