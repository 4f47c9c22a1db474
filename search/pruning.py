"""The checkpoint lifecycle after a trial ends: ``fault.keep: best | last | all``.

While a trial runs, Ray keeps its ``checkpoints_to_keep`` full training states (``state.pt``:
model, Adam moments; the best weights, when they are not the current ones, are stored once per
trial in its ``best/`` folder, :mod:`trainables.best_store`), so that a crash or
``--resume`` continues it exactly. Once the trial has ended and its row is in
``trials.parquet`` (a resumed sweep then never runs it again, :func:`search.trial.finished_before`),
nothing needs those states any more. :class:`~search.results_writer.ResultsWriter` then calls
:func:`prune_trial`, from the driver and through :class:`~core.storage.Location` (local disks
and ``s3://`` alike):

- ``best`` (default): the final checkpoint (the row's ``checkpoint`` column) keeps
  ``model.safetensors.zst`` (the best-val weights; ``model.safetensors`` in older run
  folders), ``config.json``, ``predictions/`` and ``report.json``; its ``state.pt``, every
  other checkpoint folder and ``best/`` go;
- ``last``: the final checkpoint stays whole with the best weights it names in ``best/``; the
  other checkpoint folders and best files go;
- ``all``: nothing is deleted (as before this lifecycle existed).

Both ``best`` and ``last`` also delete ``train/``: Ray Train's run folders of a data-parallel
pretraining trial (:mod:`trainables.pretrain_ddp`), whose one checkpoint Tune has copied into
the trial's own. An ended pretraining trial's product is its zoo entry (outside the run
folder); one without a zoo entry writes ``model.safetensors.zst`` into its final checkpoint
like a segmentation trial, so ``best`` keeps its weights too.

A trial that ended without a final evaluation (ASHA stopped it; it raised) has no
``model.safetensors.zst`` (the trainable writes it with the test predictions, docs/contracts.md):
with ``best`` it keeps ``report.json`` only. Its weights are not used by later commands (reports
leave stopped trials out), and making them from ``state.pt`` here would read every stopped
trial's whole state through the driver. ``keep: last`` keeps them. Ray's own files in the trial
folder (``result.json``, ...) are small and stay. Example::

    removed = prune_trial(Location.parse("runs/demo"), "Unet-resnet18_00001/checkpoint_000003",
                          keep="best")
"""

from __future__ import annotations

import posixpath

from analysis import results as R
from core.storage import Location
from search.repair import CHECKPOINT_GLOB
from trainables.best_store import BEST_DIR, BestStore
from trainables.checkpoint import CONFIG_FILE, MODEL_FILES
from trainables.pretrain_ddp import TRAIN_DIR
from trainables.report_file import REPORT_FILE

KEPT = (*MODEL_FILES, CONFIG_FILE, REPORT_FILE, R.PREDICTIONS_DIR)  # top-level names, keep=best


def prune_trial(run_dir: Location, checkpoint: str | None, *, keep: str) -> int:
    """Reduce the ended trial whose final checkpoint is ``checkpoint`` (relative to
    ``run_dir``, as in trials.parquet) to what ``keep`` keeps; returns the bytes removed.

    Idempotent: pruning a pruned trial removes nothing. A trial without a checkpoint, or with
    one outside ``run_dir``, is left alone."""
    if keep == "all" or not checkpoint or checkpoint.startswith("/") or "://" in checkpoint:
        return 0
    trial_name, final_name = posixpath.split(checkpoint.rstrip("/"))
    if not trial_name:
        return 0
    trial = run_dir / trial_name
    removed = 0
    for folder in trial.glob(CHECKPOINT_GLOB):
        if folder.name != final_name:
            removed += sum(folder.files().values())
            folder.delete()
    train = trial / TRAIN_DIR
    if train.is_dir():
        removed += sum(train.files().values())
        train.delete()
    best = trial / BEST_DIR
    if keep == "best":
        final = trial / final_name
        for path, size in final.files().items():
            if path.split("/", 1)[0] not in KEPT:
                (final / path).delete()
                removed += size
        removed += sum(best.files().values())
        best.delete()
    else:  # last: the best file the final checkpoint names stays
        sizes = best.files()
        gone = BestStore(trial).forget_unneeded(keep=set())
        removed += sum(sizes[name.split("/", 1)[1]] for name in gone)
    return removed
