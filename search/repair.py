"""``--resume``: a trial continues from its newest complete checkpoint, also when Ray's last
state snapshot names one that is gone (instead of failing) or an older one (instead of training
epochs again).

Ray deletes a trial's older checkpoints (``num_to_keep``) as soon as a newer one registers, but
writes its state snapshot (``experiment_state-*.json``) to storage only every so often. A driver
killed in between leaves a snapshot naming a deleted checkpoint, and ``Tuner.restore`` then ends
the trial as an error ("Could not recover from checkpoint as it does not exist on storage
anymore"). It was seen with S3 storage, where the snapshot upload takes longest.

Ray's snapshot can also lag the other way: when the driver dies, or the snapshot cannot be
stored (an object-store outage), checkpoints written after the last stored snapshot are not
named in it, and Ray would continue from an older one. So a trial whose folder holds a complete
checkpoint of a later epoch than the named one is pointed at that one (1. below).

Before ``Tuner.restore``, each unfinished trial whose named checkpoint is missing is pointed at:

1. the newest checkpoint in its folder whose ``report.json`` (:mod:`trainables.report_file`)
   reads and whose listed files (and the files it ``needs`` in the trial's folder: the best
   weights) exist with their recorded sizes (an upload a crash cut short does not); its Ray
   metrics are the snapshot's, updated with the report, and its iteration
   counts one report per epoch (docs/contracts.md); Ray's time counters stay the snapshot's;
2. else the newest checkpoint the snapshot still tracks that exists (a custom trainable that
   writes no report);
3. else nothing: the trial starts again.

Ray names the trial's next checkpoints after the highest existing folder, so none is written
into; nothing on storage is deleted. A trial that our ``trials.parquet`` already has as finished
is repaired too (Ray would otherwise fail it before it sees that it is done) and says so. A
checkpoint named in another trial's folder is treated as missing (no scheduler here moves
checkpoints between trials). The snapshot is then rewritten, the original kept beside it as
``<name>.before-repair``. A trial that cannot be read is left as Ray wrote it, with a warning.

This reads Ray's private trial state: ray is pinned (constraints.txt), and tests/test_repair.py
and tests/test_resume.py run it against the pinned version.
"""

from __future__ import annotations

import json
import posixpath
import sys
from dataclasses import dataclass
from dataclasses import replace as _replace
from typing import Any

from analysis import results as R
from core.errors import StorageError
from core.storage import Location
from trainables.report_file import REPORT_FILE, parse_needs, parse_report

BACKUP_SUFFIX = ".before-repair"
CHECKPOINT_GLOB = "checkpoint_*"  # Ray's folder names: checkpoint_<6-digit index>


@dataclass(frozen=True)
class Repair:
    """A trial whose named checkpoint was gone, and what it continues from."""

    trial: str
    missing: str | None  # the checkpoint Ray's snapshot names (gone, unless ``newer``)
    restored: str | None  # a checkpoint folder; None: the trial starts again
    epoch: Any = None
    finished: bool = False  # in trials.parquet already: nothing is trained again
    newer: bool = False  # the named one is there, but a later complete one is too

    def line(self) -> str:
        if self.newer:
            named = f"{self.missing} that" if self.missing else "any checkpoint"
            newer = f"newer than {named} Ray's last state snapshot names"
            if self.finished:
                return (f"resume: trial {self.trial}: {self.restored} is {newer}; the trial had "
                        "finished (trials.parquet) and is not re-run")  # fmt: skip
            return (f"resume: trial {self.trial}: continues from {self.restored} (epoch "
                    f"{self.epoch}), {newer}")  # fmt: skip
        gone = f"resume: trial {self.trial}: {self.missing} (named by Ray's last state snapshot)"
        if self.finished:
            return f"{gone} is gone; the trial had finished (trials.parquet) and is not re-run"
        if self.restored is None:
            return f"{gone} is gone and no complete checkpoint is left; the trial starts again"
        return f"{gone} is gone; it continues from {self.restored} (epoch {self.epoch})"


def repair_snapshot(state: Location, run_dir: Location) -> list[Repair]:
    """Repair every unfinished trial of the snapshot ``state``; rewrite it if any was."""
    raw = state.read_bytes()
    data = json.loads(raw)
    finished = _finished_trials(run_dir)
    repairs = []
    for entry in data["trial_data"]:
        try:
            fixed = _repair_trial(entry[0], entry[1], run_dir)
        except StorageError:
            raise
        except Exception as err:  # Ray's private state changed: never block a resume on it
            print(f"microsweep: warning: resume: a trial of {state} was not checked ({err!r})",
                  file=sys.stderr)  # fmt: skip
            continue
        if fixed is not None:
            (entry[0], entry[1]), repair = fixed
            repairs.append(_replace(repair, finished=repair.trial in finished))
    if repairs:
        (run_dir / (state.name + BACKUP_SUFFIX)).write_bytes(raw)
        state.write_bytes(json.dumps(data).encode())
    return repairs


def _finished_trials(run_dir: Location) -> set[str]:
    path = run_dir / R.TRIALS_FILE
    return (
        set(path.read_table(columns=[R.TRIAL]).column(R.TRIAL).to_pylist())
        if path.is_file()
        else set()
    )


def _repair_trial(
    trial_json: str, meta_json: str, run_dir: Location
) -> tuple[tuple[str, str], Repair] | None:
    """The trial's new ``(state, run metadata)`` JSON and what was done; None if it is fine."""
    from ray.tune.experiment.trial import Trial

    trial = Trial.from_json_state(trial_json, stub=True)
    if trial.status == Trial.TERMINATED:
        return None  # not restored: resume skips finished trials
    trial.restore_run_metadata(meta_json)
    manager = trial.run_metadata.checkpoint_manager
    latest = manager.latest_checkpoint_result
    folder, fs_path = run_dir / trial.storage.trial_dir_name, trial.storage.trial_fs_path
    newest = _from_reports(folder, fs_path, latest, trial.storage.storage_filesystem)
    present = latest is None or _exists(latest, folder, fs_path)
    if present and not _is_newer(newest, latest):
        return None
    kept = [r for r in manager.best_checkpoint_results if _exists(r, folder, fs_path)]
    newest_kept = max(kept, key=lambda r: r.metrics.get("training_iteration", 0), default=None)
    chosen = newest or newest_kept
    _point_at(trial, chosen, kept, folder)
    trial.stub = False  # stored with the state: a stub trial would not run when restored
    trial.run_metadata.invalidate_cache()
    trial.invalidate_json_state()
    name = posixpath.basename(chosen.checkpoint.path) if chosen else None
    epoch = chosen.metrics.get("epoch") if chosen else None
    named = posixpath.basename(latest.checkpoint.path) if latest else None
    return trial.get_json_state(), Repair(str(trial), named, name, epoch, newer=present)


def _is_newer(candidate: Any, latest: Any) -> bool:
    """Whether ``candidate`` (a result from a report) is a later epoch than ``latest``."""
    if candidate is None or latest is None:
        return candidate is not None
    return candidate.metrics["epoch"] > latest.metrics.get("epoch", candidate.metrics["epoch"])


def _exists(result: Any, folder: Location, trial_fs_path: str) -> bool:
    """Whether the checkpoint is in this trial's own folder and still there."""
    path = result.checkpoint.path
    return posixpath.dirname(path) == trial_fs_path and (folder / posixpath.basename(path)).is_dir()


def _from_reports(folder: Location, fs_path: str, latest: Any, filesystem: Any) -> Any:
    """A Ray result for the newest complete checkpoint with a report, or None; ``folder`` is
    the trial's folder as we reach it, ``fs_path`` as Ray's snapshot names it, ``latest`` the
    snapshot's latest checkpoint result (None: it names none)."""
    for candidate in reversed(folder.glob(CHECKPOINT_GLOB)):
        report_file = candidate / REPORT_FILE
        data = report_file.read_bytes() if report_file.is_file() else b""
        parsed, needs = parse_report(data), parse_needs(data) or {}
        if parsed is None or any((candidate / f).size() != n for f, n in parsed[1].items()):
            continue  # no report, or an upload a crash cut short
        if any((folder / f).size() != n for f, n in needs.items()):
            continue  # the best weights it names are not (or not wholly) there
        path = posixpath.join(fs_path, candidate.name)
        result = _result_from_report(latest, path, parsed[0], filesystem)
        if result is not None:
            return result
    return None


def _result_from_report(latest: Any, path: str, metrics: dict[str, Any], filesystem: Any) -> Any:
    """The snapshot's last metrics updated with the report; iterations count epochs."""
    from ray.train import Checkpoint
    from ray.train._internal.session import _TrainingResult

    base = latest.metrics if latest else {"epoch": 0, "training_iteration": 0}
    epoch, base_epoch = metrics.get("epoch"), base.get("epoch")
    if not isinstance(epoch, int) or not isinstance(base_epoch, int):
        return None
    iteration = int(base.get("training_iteration", base_epoch)) + epoch - base_epoch
    name = posixpath.basename(path)
    merged = {**base, **metrics, "checkpoint_dir_name": name, "training_iteration": iteration}
    checkpoint = Checkpoint(path=path, filesystem=filesystem)
    return _TrainingResult(checkpoint=checkpoint, metrics=merged)


def _point_at(trial: Any, chosen: Any, kept: list[Any], folder: Location) -> None:
    """Make ``chosen`` (or nothing) the latest of the ``kept`` checkpoints that still exist; Ray
    names the next one after the highest existing folder, so that it never writes into one."""
    from ray.train._internal.checkpoint_manager import _insert_into_sorted_list

    manager = trial.run_metadata.checkpoint_manager
    if chosen is not None and chosen not in kept:
        _insert_into_sorted_list(kept, chosen, key=manager._get_checkpoint_score)
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = chosen
    numbers = [_number(c.name) for c in folder.glob(CHECKPOINT_GLOB)]
    numbers.append(trial.storage.current_checkpoint_index)
    if chosen is not None:
        numbers.append(_number(posixpath.basename(chosen.checkpoint.path)))
    trial.storage.current_checkpoint_index = max(n for n in numbers if n is not None)


def _number(name: str) -> int | None:
    """The index in Ray's checkpoint folder name ``checkpoint_000004``; None for other names."""
    digits = name.rpartition("_")[2]
    return int(digits) if digits.isdigit() else None
