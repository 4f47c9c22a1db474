"""A trial that Ray stops (ASHA's decision) ends quietly: its training thread finishes first.

Why the abort dumps appeared (Ray 2.60, Python 3.11): a function trainable runs in a daemon
``RunnerThread`` (``ray/air/_internal/util.py``) of the trial's actor. When the scheduler stops
a trial, Tune calls the actor's ``stop()`` -> ``FunctionTrainable.cleanup()`` ->
``session.finish(timeout=0)``: it wakes the training thread (blocked in ``tune.report``), which
raises ``SystemExit`` there and unwinds through the trainable (``finally`` blocks: deleting the
scratch checkpoint, freeing the model), but *does not wait for it*. Tune then drops the actor,
whose process shuts the interpreter down while that thread still runs. A daemon thread that
asks for the GIL during finalization is ended with ``pthread_exit``; the forced unwinding
crosses a C++ frame of torch that may not be unwound (``THPVariable_*``, ``noexcept``), so
``std::terminate`` -> Ray's terminate handler -> ``abort()``: Ray's ``*** SIGABRT received
***`` and faulthandler's ``Fatal Python error: Aborted`` with the thread's stack ending in
``ray/air/_internal/util.py``. Results were intact (the trial had reported), only the output.

The fix: :func:`ends_quietly` gives the function trainable a mixin (Ray's ``__mixins__`` hook of
``wrap_function``, kept by ``tune.with_parameters``) whose ``cleanup`` joins the training
thread before the actor goes away, so nothing runs when the process exits.

Example::

    fn = ends_quietly(tune.with_parameters(run_trial, data=data))
    tuner = tune.Tuner(tune.with_resources(fn, {"cpu": 1}), ...)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

# How long a stopped trial's actor waits for its training thread to end. The thread normally
# only unwinds from ``tune.report`` (well under a second); one caught mid-epoch ends at its
# next report. Past this, Ray's old behaviour (the process exits under the thread) applies.
JOIN_TIMEOUT_S = float(os.environ.get("MICROSWEEP_STOP_JOIN_S", "60"))


class JoinTrainingThread:
    """Mixin for Ray's ``FunctionTrainable``: ``cleanup`` waits for the training thread."""

    def cleanup(self) -> None:
        from ray.train._internal.session import get_session

        session = get_session()
        thread = getattr(session, "training_thread", None)
        started = bool(getattr(session, "training_started", False))
        try:
            super().cleanup()  # type: ignore[misc]  # wakes the thread: SystemExit in report
        finally:
            if thread is not None and started and thread.is_alive():
                thread.join(timeout=JOIN_TIMEOUT_S)


def ends_quietly(trainable: Callable[..., Any]) -> Callable[..., Any]:
    """``trainable`` (a function) with :class:`JoinTrainingThread` mixed into its actor class."""
    mixins = tuple(getattr(trainable, "__mixins__", ()))
    if JoinTrainingThread not in mixins:
        trainable.__mixins__ = (JoinTrainingThread, *mixins)  # type: ignore[attr-defined]
    return trainable
