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
    """Counts the trials that had not ended when Tune ended the experiment: those that ran in
    this run but never completed or failed (Tune marks them terminated when it stops their
    actors at the end), and those still pending."""

    def __init__(self) -> None:
        self.started: set[str] = set()
        self.ended: set[str] = set()
        self.unfinished = 0
        self.total = 0

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started.add(trial.trial_id)

    on_trial_restore = on_trial_start

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.ended.add(trial.trial_id)

    on_trial_error = on_trial_complete

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        waiting = {t.trial_id for t in trials if t.status in ("PENDING", "PAUSED")}
        self.total = len(trials)
        self.unfinished = len((self.started - self.ended) | waiting)

    def check(self) -> None:
        """Raise :class:`Interrupted` when trials were left unfinished."""
        if self.unfinished:
            raise Interrupted(
                f"interrupted: {self.unfinished} of {self.total} trial(s) had not ended (their "
                "newest checkpoints are kept); run the same command with --resume to continue"
            )
