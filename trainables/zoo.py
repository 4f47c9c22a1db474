"""The encoder zoo: a folder of pretrained encoder weights that init sources accept by name.

Layout (this module owns it)::

    ZOO/manifest.json        {"schema_version": 1, "entries": {NAME: {...ZooEntry fields}}}
    ZOO/<NAME>.safetensors   the encoder's state dict (keys as ``model.encoder.state_dict()``)

Files and the manifest are written atomically under a folder lock; every load verifies the
file's full SHA-256 against the manifest (safetensors alone misses a flipped data byte).

Example::

    entry = export_encoder(Path("zoo"), name="r18-micro", encoder="resnet18",
                           state_dict=model.encoder.state_dict(), init="none",
                           dataset="micronet-synth", val_top1=0.81, val_top5=0.97)
    entry, tensors = load_zoo_weights(Path("zoo"), "r18-micro")
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from core import storage
from core.errors import UserError, unknown_name
from trainables.fileutil import (
    commit_file,
    folder_lock,
    sha256_file,
    temp_path_beside,
)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS_SUFFIX = ".safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class ZooEntry:
    """One exported encoder: what it is, where it came from, how good it was."""

    name: str
    encoder: str
    init: str
    dataset: str
    val_top1: float
    val_top5: float
    sha256: str
    date: str
    file: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object], *, where: str) -> ZooEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names - set(data))
        if missing:
            raise UserError(f"{where}: zoo entry lacks {', '.join(missing)}; re-export it")
        return cls(**{k: data[k] for k in names})  # type: ignore[arg-type]


def validate_zoo_name(name: str) -> str:
    """Zoo names become file names: letters, digits, ``.``, ``_``, ``-``; at most 100."""
    if not _NAME_RE.match(name):
        raise UserError(
            f"zoo name {name!r} is not allowed; use letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def _read_manifest(zoo_dir: Path) -> dict[str, dict[str, object]]:
    path = zoo_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: unreadable zoo manifest ({err}); restore or delete it") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{path}: zoo schema_version {version!r} is not supported (expected {SCHEMA_VERSION})"
        )
    entries = data.get("entries", {})
    if not isinstance(entries, dict):
        raise UserError(f"{path}: 'entries' must be a mapping of name -> entry")
    return entries


def load_zoo(zoo_dir: Path) -> dict[str, ZooEntry]:
    """All entries of the zoo at ``zoo_dir`` (empty if the folder has no manifest yet)."""
    zoo_dir = Path(zoo_dir)
    if not zoo_dir.is_dir():
        raise UserError(
            f"zoo folder {zoo_dir} not found; export an encoder with 'microsweep pretrain'"
        )
    where = str(zoo_dir / MANIFEST)
    return {
        name: ZooEntry.from_dict(raw, where=where) for name, raw in _read_manifest(zoo_dir).items()
    }


def get_zoo_entry(zoo_dir: Path, name: str) -> ZooEntry:
    """The entry ``name``; unknown names answer with the zoo's names and the nearest match."""
    entries = load_zoo(zoo_dir)
    if name not in entries:
        raise unknown_name("zoo entry", name, entries, hint="") from None
    return entries[name]


def load_zoo_weights(zoo_dir: Path, name: str) -> tuple[ZooEntry, dict[str, torch.Tensor]]:
    """The entry and its tensors, after checking the file's SHA-256 against the manifest."""
    zoo_dir = Path(zoo_dir)
    entry = get_zoo_entry(zoo_dir, name)
    path = zoo_dir / entry.file
    if not path.is_file():
        raise UserError(f"zoo entry {name!r}: file {path} is missing; re-export the encoder")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise UserError(
            f"zoo entry {name!r}: {path} has sha256 {actual[:16]}…, manifest says "
            f"{entry.sha256[:16]}…; the file is corrupt or was replaced, re-export it"
        )
    return entry, load_file(str(path), device="cpu")


def export_encoder(
    zoo_dir: Path,
    *,
    name: str,
    encoder: str,
    state_dict: dict[str, torch.Tensor],
    init: str,
    dataset: str,
    val_top1: float,
    val_top5: float,
    overwrite: bool = False,
) -> ZooEntry:
    """Write ``state_dict`` as ``<name>.safetensors`` and record it in the manifest, atomically."""
    zoo_dir = Path(zoo_dir)
    validate_zoo_name(name)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    with folder_lock(zoo_dir):
        entries = _read_manifest(zoo_dir)
        if name in entries and not overwrite:
            raise UserError(f"zoo entry {name!r} exists in {zoo_dir}; choose another --name")
        file = name + WEIGHTS_SUFFIX
        tmp = temp_path_beside(zoo_dir / file)
        try:
            save_file(tensors, str(tmp), metadata={"encoder": encoder, "init": init})
            sha = sha256_file(tmp)
            commit_file(tmp, zoo_dir / file)
        finally:
            tmp.unlink(missing_ok=True)
        entry = ZooEntry(
            name=name,
            encoder=encoder,
            init=init,
            dataset=dataset,
            val_top1=float(val_top1),
            val_top5=float(val_top5),
            sha256=sha,
            date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            file=file,
        )
        entries[name] = entry.to_dict()
        storage.write_json(
            zoo_dir / MANIFEST, {"schema_version": SCHEMA_VERSION, "entries": entries}
        )
    return entry
