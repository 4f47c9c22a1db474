"""Our own record of a sweep: a Ray Tune callback that keeps the run folder current.

It writes ``run.json``, ``trials.parquet`` (one row per finished trial, plus ``infeasible`` rows
that were never trained), ``epochs.parquet`` (one row per trial-epoch) and ``per_image.parquet``
atomically (analysis.results), throttled while trials report and at once when a trial ends.
Statuses come from what the trials reported and how Ray ended them — never from Ray's
``result.json`` reader, which drops a whole trial on one torn line:

- ``diverged`` / ``infeasible``: the trial reported ``diverged=True`` / ``infeasible=True``;
- ``completed``: its last report was final (``done``; patience exhausted or max epochs);
- ``stopped``: Ray ended it before a final report (ASHA's decision);
- ``error``: it raised, after ``max_failures`` retries.

On ``--resume`` the files already written are read back, so finished trials keep their rows and
epochs re-reported after a checkpoint replace, not duplicate, the earlier rows. The first report
after a restore carries ``history`` (every epoch up to the checkpoint): rows a killed driver had
not written yet are filled in from it.

``run_dir`` is a local folder or a URI (``s3://bucket/runs/NAME``; :mod:`core.storage`). A
write that fails while trials run (a network hiccup) is reported and retried at the next write,
since every write replaces the whole file from memory; the last write at the end must succeed.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
from ray import tune

from analysis import results as R
from core import keys as K
from core import storage
from core.errors import StorageError
from core.storage import Location
from search.pruning import prune_trial

STATE_KEYS = (K.DIVERGED, K.INFEASIBLE, K.ERROR, K.BEST_EPOCH)


class ResultsWriter(tune.Callback):
    """Keeps ``run_dir`` current; ``factors`` are the space keys written as columns, and the
    task's objective (``task.metric``) names the column of each trial's best value."""

    def __init__(
        self,
        run_dir: str,
        run_info: dict[str, Any],
        factors: list[str],
        infeasible: list[tuple[dict[str, Any], str]],
        resources: Any,
        task: Any,
        stage: str = R.SEARCH,
        fold: int | None = None,
        min_interval_s: float = 5.0,
        keep: str = "all",
        write_each_end: bool = True,
    ) -> None:
        self.run_dir = str(run_dir)
        self.task = task  # trainables.task.Task: objective, epoch and final keys
        self.stage = stage  # the `stage` column of the rows this writer adds
        self.fold = fold  # recommend --folds: their `fold` column (no column otherwise)
        self.run_info = run_info
        self.factors = factors
        self.infeasible = infeasible
        self.resources = resources
        self.min_interval_s = min_interval_s
        self.keep = keep  # fault.keep: what an ended trial keeps once its row is written
        self.write_each_end = write_each_end  # False: ended trials wait for the throttle
        self._reset()

    def _reset(self) -> None:
        self._trials: dict[str, dict[str, Any]] = {}
        self._epochs: dict[tuple[str, int], dict[str, Any]] = {}
        self._images: dict[str, list[dict[str, Any]]] = {}
        self._state: dict[str, dict[str, Any]] = {}
        self._finished_before: set[str] = set()
        self._to_prune: list[str] = []  # ended trials, pruned after their row is written
        self._pruned: set[str] = set()
        self._last_write = 0.0
        self._run = Location.parse(self.run_dir)  # its filesystem is resolved once, on first use

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the callback in tuner.pkl
        state = dict(self.__dict__)
        for key in ("_trials", "_epochs", "_images", "_state", "_finished_before", "_pruned"):
            state[key] = {}
        state["_to_prune"] = []
        state.pop("_run", None)  # a resolved filesystem may hold credentials
        return state

    # ------------------------------------------------------------------ Ray's hooks
    def setup(self, **info: Any) -> None:
        self._reset()
        self._load_existing()
        for i, (config, reason) in enumerate(self.infeasible):
            name = f"infeasible_{i:05d}"
            row = self._base_row(name, config)
            row.update({R.STATUS: R.INFEASIBLE, R.ERROR: reason, R.EPOCHS: 0})
            self._trials.setdefault(name, row)
        if self.stage == R.SEARCH or not (self._run / R.RUN_FILE).is_file():
            storage.write_json(self._run / R.RUN_FILE, self.run_info)
        self._flush()

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        name = trial_name(trial)
        if name in self._finished_before:
            return
        state = track_state(self._state.setdefault(name, {}), result, best_key=self.task.best_key)
        state["wall_s"] = result.get("time_total_s")
        state["epoch"] = result.get(R.EPOCH, result.get("training_iteration"))
        state["node"] = result.get("node_ip")
        self._record_epoch(name, result)
        self._record_final(name, result)
        if self._due():
            self._flush(retry_later=True)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = trial_name(trial)
        if name in self._finished_before:  # recorded before a driver crash; kept as it was
            return
        self._trials[name] = self._finished_row(trial, self._status(name, trial))
        self._to_prune.append(name)
        if getattr(self, "write_each_end", True) or self._due():  # pickled before it existed
            self._flush(retry_later=True)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        name = trial_name(trial)
        if name in self._finished_before:  # its end was recorded; a failed restore changes nothing
            return
        row = self._finished_row(trial, R.ERRORED)
        row[R.ERROR] = error_line(trial)
        self._trials[name] = row
        self._to_prune.append(name)
        self._flush(retry_later=True)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        # also the trials a killed driver had recorded but not pruned (idempotent)
        self._to_prune += [n for n, r in self._trials.items() if r.get(R.CHECKPOINT)]
        self._flush()

    def _due(self) -> bool:
        return time.monotonic() - self._last_write >= self.min_interval_s

    # ------------------------------------------------------------------ rows
    def _status(self, name: str, trial: Any) -> str:
        return status_from(self._state.get(name, {}))

    def _base_row(self, name: str, config: dict[str, Any]) -> dict[str, Any]:
        res = self.resources(config)
        row = {R.TRIAL: name, R.EXPERIMENT: self.run_info["experiment"], R.STAGE: self.stage}
        if getattr(self, "fold", None) is not None:  # (a writer pickled before folds has none)
            row[R.FOLD] = self.fold
        row[R.DATASET] = self.run_info.get("dataset")
        if self.run_info.get(R.DATASET_SHA256):  # a fold stage's: its own split file's
            row[R.DATASET_SHA256] = self.run_info[R.DATASET_SHA256]
        row.update({k: _scalar(config.get(k)) for k in self.factors})
        row[R.SEED] = config.get("seed")
        row.update({R.CPU: float(res["cpu"]), R.GPU: float(res["gpu"])})
        return row

    def _finished_row(self, trial: Any, status: str) -> dict[str, Any]:
        name = trial_name(trial)
        row = self._base_row(name, trial.config)
        state = self._state.get(name, {})
        epochs = [e for (t, _), e in self._epochs.items() if t == name]
        metric = self.task.metric
        best = _best_epoch(epochs, metric)
        row.update(
            {
                R.STATUS: status,
                R.EPOCHS: max([e[R.EPOCH] for e in epochs] + [int(state.get("epoch") or 0)]),
                R.BEST_EPOCH: state.get(K.BEST_EPOCH, best and best[R.EPOCH]),
                metric: _finite(state.get(self.task.best_key, best and best[metric])),
                R.WALL_S: state.get("wall_s"),
                R.NODE: state.get("node"),
                R.ERROR: state.get(K.ERROR) if status != R.COMPLETED else None,
                R.CHECKPOINT: self._checkpoint(trial),
            }
        )
        row.update(state.get("final", {}))
        return row

    def _record_epoch(self, name: str, result: dict[str, Any]) -> None:
        for earlier in _history(result):  # sent once after a restore
            if (name, int(earlier.get(R.EPOCH, 0))) not in self._epochs:
                self._record_epoch(name, earlier)
        if self.task.metric not in result and K.TRAIN_LOSS not in result:
            return
        epoch = int(result.get(K.EPOCH, result.get("training_iteration", 0)))
        row = {R.TRIAL: name, R.STAGE: self.stage, R.EPOCH: epoch}  # status splits by stage
        for key in self.task.epoch_keys:
            row[key] = _float(result.get(key))
        row[R.WALL_S] = _float(result.get(K.WALL_S, result.get("time_total_s")))
        self._epochs[(name, epoch)] = row

    def _record_final(self, name: str, result: dict[str, Any]) -> None:
        final = {k: _final(v) for k, v in result.items() if self.task.is_final_key(k)}
        if final:
            self._state[name].setdefault("final", {}).update(final)
        per_image = result.get(K.PER_IMAGE_IOU)
        if isinstance(per_image, dict):
            self._images[name] = [
                {R.TRIAL: name, R.SPLIT: split, R.IMAGE: image, R.IOU: _float(iou)}
                for split, images in per_image.items()
                for image, iou in images.items()
            ]

    def _checkpoint(self, trial: Any) -> str | None:
        checkpoint = getattr(trial, "checkpoint", None)
        path = getattr(checkpoint, "path", None)  # a path on the storage's filesystem
        return self._run.relative(str(path)) if path else None

    # ------------------------------------------------------------------ files
    def _load_existing(self) -> None:
        run = self._run
        for row in _read_rows(run / R.TRIALS_FILE):
            self._trials[row[R.TRIAL]] = row
            self._finished_before.add(row[R.TRIAL])
        for row in _read_rows(run / R.EPOCHS_FILE):
            self._epochs[(row[R.TRIAL], int(row[R.EPOCH]))] = row
        for row in _read_rows(run / R.PER_IMAGE_FILE):
            self._images.setdefault(row[R.TRIAL], []).append(row)

    def _flush(self, *, retry_later: bool = False) -> None:
        run = self._run
        try:
            _write(list(self._trials.values()), run / R.TRIALS_FILE, (R.TRIAL, R.STATUS))
            epochs = sorted(self._epochs.values(), key=lambda r: (r[R.TRIAL], r[R.EPOCH]))
            _write(epochs, run / R.EPOCHS_FILE, (R.TRIAL, R.EPOCH, *self.task.epoch_keys))
            images = [r for rows in self._images.values() for r in rows]
            _write(images, run / R.PER_IMAGE_FILE, R.PER_IMAGE_COLUMNS)
        except StorageError as err:
            if not retry_later:
                raise
            print(f"microsweep: warning: {err} (retried at the next write)", file=sys.stderr)
            return
        finally:
            self._last_write = time.monotonic()
        self._prune_recorded()

    def _prune_recorded(self) -> None:
        """Prune the ended trials whose rows the last write stored (never before: ``--resume``
        skips a trial only once trials.parquet has it)."""
        pending, self._to_prune = self._to_prune, []
        keep = getattr(self, "keep", "all")  # a writer pickled before fault.keep existed
        for name in pending:
            if name in self._pruned:
                continue
            try:
                prune_trial(self._run, self._trials[name].get(R.CHECKPOINT), keep=keep)
            except StorageError as err:  # the files stay; pruning is tried again at the end
                print(f"microsweep: warning: {err} (pruning retried later)", file=sys.stderr)
                self._to_prune.append(name)
                continue
            self._pruned.add(name)


def track_state(
    state: dict[str, Any], result: dict[str, Any], *, best_key: str = K.BEST_VAL_IOU
) -> dict[str, Any]:
    """Fold one report into a trial's ``state`` (what :func:`status_from` decides on)."""
    for key in (*STATE_KEYS, best_key):
        if key in result:
            state[key] = result[key]
    # Ray marks the result it stops a trial on with done=True too: only a report
    # holding the final metrics counts as the trainable's own `done`.
    state[K.DONE] = bool(result.get(K.DONE)) and K.BEST_EPOCH in result
    return state


def status_from(state: dict[str, Any]) -> str:
    """The status of a trial that ended without raising, from its folded reports."""
    if state.get(K.DIVERGED):
        return R.DIVERGED
    if state.get(K.INFEASIBLE):
        return R.INFEASIBLE
    if state.get(K.DONE):
        return R.COMPLETED
    return R.STOPPED


def trial_name(trial: Any) -> str:
    return str(getattr(trial, "trial_name", None) or trial)


def _history(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The epoch reports a restored trial sent along (a JSON array; docs/contracts.md)."""
    try:
        earlier = json.loads(result.get(K.HISTORY) or "[]")
    except (TypeError, ValueError):
        return []
    return [e for e in earlier if isinstance(e, dict)] if isinstance(earlier, list) else []


def _best_epoch(epochs: list[dict[str, Any]], metric: str) -> dict[str, Any] | None:
    scored = [e for e in epochs if _finite(e.get(metric)) is not None]
    return max(scored, key=lambda e: (e[metric], -e[R.EPOCH])) if scored else None


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    value = _float(value)
    return value if value is not None and math.isfinite(value) else None


def _final(value: Any) -> Any:
    """A final metric as a finite float; strings (a zoo entry's name) as they are."""
    return value if isinstance(value, str) else _finite(value)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return json.dumps(value, default=str)


def error_line(trial: Any) -> str:
    """The exception's last line, from Ray's plain-text ``error.txt`` (never its pickle)."""
    text = str(getattr(trial, "error_msg", "") or "")
    error_file = getattr(trial, "error_file", None)
    if not text and error_file and Path(error_file).is_file():
        text = Path(error_file).read_text(errors="replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "trial raised an exception (see Ray's error.txt)"


def _read_rows(path: Location) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return path.read_table().to_pylist()


def _write(rows: list[dict[str, Any]], path: Location, columns: tuple[str, ...]) -> None:
    frame = pd.DataFrame(rows, columns=None if rows else list(columns))
    if R.FOLD in frame.columns:  # an int column although search rows have no fold
        frame[R.FOLD] = frame[R.FOLD].astype("Int64")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    storage.write_parquet(path, table)
