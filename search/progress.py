"""The progress lines of a launch: one line per epoch for a one-trial run (``train``,
``pretrain``), one line per trial that ends for a sweep; driven by the task's own
``progress_line``, so every task prints its own objective."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ray import tune

from core import keys as K

if TYPE_CHECKING:
    from search.plan import Plan
    from trainables.task import Task

Printer = Callable[[str], None]


def stderr_line(line: str) -> None:
    """A line for the person at the terminal, also while Ray's output goes to the run's log."""
    from search.console import terminal

    stream = terminal()
    print(line, file=sys.stderr if stream is sys.stdout else stream, flush=True)


class TrialProgress(tune.Callback):
    """Epoch lines when one trial runs; a line per ended trial (status, epochs, best) else."""

    def __init__(self, task: Task, plan: Plan, *, printer: Printer = stderr_line) -> None:
        self.task, self.printer = task, printer
        self.single = plan.trials == 1
        self._best: dict[str, float] = {}
        self._epochs: dict[str, int] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
        name = str(trial)
        if self.task.metric in result:
            value = float(result[self.task.metric])
            self._best[name] = max(self._best.get(name, value), value)
            self._epochs[name] = int(result.get(K.EPOCH, iteration))
            if self.single:
                self.printer(self.task.progress_line(result) or "")
        for key in (K.DIVERGED, K.INFEASIBLE):
            if result.get(key):
                self.printer(f"trial {name}: {key}: {result.get(K.ERROR)}")

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info):
        if not self.single:
            self.printer(self._ended(trial, "ended"))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info):
        self.printer(self._ended(trial, "failed"))

    def _ended(self, trial: Any, how: str) -> str:
        name = str(trial)
        best = self._best.get(name)
        score = f", best {self.task.metric} {best:.4f}" if best is not None else ""
        return f"trial {name} {how} after {self._epochs.get(name, 0)} epoch(s){score}"
