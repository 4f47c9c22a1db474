"""The best-val weights of a running trial, stored once per trial instead of in every checkpoint.

A checkpoint's ``state.pt`` (segmentation and pretraining trials alike) holds the current
model, the optimiser's state and the schedule. When the best model so far is not the current
one, the best weights live in the trial's folder on storage (beside Ray's ``checkpoint_*``
folders, so that Ray's rotation of those never deletes them)::

    RUN/<trial>/best/epoch_000007.safetensors    the best weights as of epoch 7

and the checkpoint names that file with its size in ``state.pt`` (``extra["needs"]``) and
in its ``report.json`` under ``needs`` (:mod:`trainables.report_file`). A file is written once,
at the first checkpoint that needs it: a trial whose every checkpoint holds its best so far
(the common case while it still improves) writes none.

Exact resume: a restored trial reads the file its checkpoint names, i.e. the best model as of
the checkpoint's epoch, even when the trial had written newer ones before a crash (they have
other names). A file is deleted only when no checkpoint folder left on storage names it
(:meth:`BestStore.save` looks after writing a new one), and only those can be restored, by
Ray or by ``--resume``'s repair of a stale snapshot (:mod:`search.repair`, which also checks
``needs``). A store made with ``late_checkpoints`` also keeps every file that a checkpoint not
yet on storage may name: a data-parallel trial's checkpoints reach the trial's folder while its
workers already train the next epochs (:mod:`trainables.pretrain_ddp`). Checkpoints arrive in
order, and each names the best as of its epoch, so one still on its way names a file no older
than the newest best that an arrived checkpoint holds or names; only older files that no
arrived checkpoint names are deleted. Once the trial has ended, the run folder's
pruning (:mod:`search.pruning`) keeps what ``fault.keep`` asks for. Reads and writes go
through :class:`core.storage.Location` on the filesystem Ray stores the trial on (local,
``s3://``). Example::

    store = BestStore(Location.parse("runs/demo/Unet-resnet18_00001"))
    needs = store.needs(7, model.state_dict())  # {"best/epoch_000007.safetensors": 57150848}
    weights = store.restore(needs, epoch=7)     # in the restored trial
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

import torch

from core.errors import UserError
from core.keys import EPOCH
from core.storage import Location
from trainables.report_file import REPORT_FILE, parse_needs, parse_report

BEST_DIR = "best"
CHECKPOINT_GLOB = "checkpoint_*"  # Ray's checkpoint folders in a trial's folder


class BestStore:
    """The ``best/`` folder of one trial; ``trial`` is the trial's folder on storage."""

    def __init__(self, trial: Location, *, late_checkpoints: bool = False) -> None:
        self.trial = trial
        self.late_checkpoints = late_checkpoints
        self._stored: tuple[int, dict[str, int]] | None = None  # (best epoch, its `needs`)

    @classmethod
    def for_ray_trial(cls) -> BestStore:
        """The store of the Ray Tune trial this process runs (its folder on Ray's storage)."""
        from ray import tune

        storage = tune.get_context().get_storage()
        return cls(Location.on(storage.storage_filesystem, storage.trial_fs_path))

    @staticmethod
    def name(epoch: int) -> str:
        return f"{BEST_DIR}/epoch_{epoch:06d}.safetensors"

    def needs(self, epoch: int, weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """``needs`` of a checkpoint whose best model is ``weights``, the best as of ``epoch``:
        written at the first checkpoint that needs it, only named by the later ones."""
        if self._stored is None or self._stored[0] != epoch:
            self._stored = (epoch, self.save(epoch, weights))
        return dict(self._stored[1])

    def restore(self, needs: Mapping[str, int], *, epoch: int) -> dict[str, torch.Tensor]:
        """The best weights a restored checkpoint names in ``needs`` (the best of ``epoch``);
        later checkpoints of the trial name the same file until the best changes."""
        (name,) = needs
        weights = self.load(name)
        self._stored = (epoch, dict(needs))
        return weights

    def save(self, epoch: int, weights: Mapping[str, torch.Tensor]) -> dict[str, int]:
        """Store ``weights`` as the best of ``epoch`` (atomically); delete the files that no
        checkpoint on storage names any more. Returns ``{name: size}`` for ``needs``."""
        from safetensors.torch import save

        tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
        data = save(tensors, metadata={"epoch": str(epoch)})
        name = self.name(epoch)
        (self.trial / name).write_bytes(data)
        self.forget_unneeded(keep={name})
        return {name: len(data)}

    def load(self, name: str) -> dict[str, torch.Tensor]:
        """The weights a checkpoint names (``best/epoch_NNNNNN.safetensors``)."""
        from safetensors.torch import load

        path = self.trial / name
        if not path.is_file():
            raise UserError(f"{path}: the best weights this checkpoint names are missing; "
                            "start the trial afresh")  # fmt: skip
        return load(path.read_bytes())

    def forget_unneeded(self, *, keep: set[str]) -> list[str]:
        """Delete the best files that neither ``keep`` nor a checkpoint folder of the trial
        names (with ``late_checkpoints``: nor one on its way may name); returns the names
        deleted. A folder without a complete report is an upload a crash cut short: neither
        Ray (it never registered it) nor the repair restores it."""
        needed, floor = set(keep), None  # floor: the newest best an arrived checkpoint has
        for folder in self.trial.glob(CHECKPOINT_GLOB):
            report = folder / REPORT_FILE
            named = _best_named(report.read_bytes()) if report.is_file() else None
            if named is not None:
                needed |= named[0]
                if named[1] is not None:
                    floor = named[1] if floor is None else max(floor, named[1])
        gone = []
        for path in (self.trial / BEST_DIR).glob("*.safetensors"):
            name = posixpath.join(BEST_DIR, path.name)
            if name in needed or (self.late_checkpoints and _at_or_after(name, floor)):
                continue
            path.delete()
            gone.append(name)
        return gone


def _best_named(report: bytes) -> tuple[set[str], int | None] | None:
    """A complete report's best files and the epoch of the best model its checkpoint has (the
    file it names, else its own epoch; None when it does not say); None if incomplete."""
    needs, parsed = parse_needs(report), parse_report(report)
    if needs is None or parsed is None:
        return None
    if needs:
        return set(needs), max(_epoch_of(n) for n in needs)
    epoch = parsed[0].get(EPOCH)
    return set(), epoch if isinstance(epoch, int) else None


def _epoch_of(name: str) -> int:
    """The epoch in a best file's name (``best/epoch_000007.safetensors``: 7; -1 if none)."""
    stem = posixpath.basename(name).removesuffix(".safetensors")
    digits = stem.removeprefix("epoch_")
    return int(digits) if digits.isdigit() else -1


def _at_or_after(name: str, floor: int | None) -> bool:
    """Whether a checkpoint still on its way may name ``name``: no checkpoint has arrived
    whose best is newer (None: none says what its best is, so any may)."""
    return floor is None or _epoch_of(name) >= floor


def restore_best(
    store: BestStore | None, needs: Mapping[str, int], *, epoch: int
) -> dict[str, torch.Tensor]:
    """:meth:`BestStore.restore`, or a one-line error where a trial runs without its store."""
    if store is None:
        raise UserError("this checkpoint's best weights are stored beside it in the "
                        "trial's folder; restore it under Ray Tune")  # fmt: skip
    return store.restore(needs, epoch=epoch)
