"""A weights folder: the published encoder weights a sweep needs, fetched once, used offline.

Layout (this module owns it)::

    DIR/manifest.json     {"schema_version": 1, "files": {RELPATH: {init, encoder, source,
                           sha256, size, date}}}
    DIR/hub/models--smp-hub--<encoder>.imagenet/snapshots/<revision>/{config.json,
         model.safetensors}            smp's ImageNet files, as a Hugging Face hub cache
    DIR/micronet/<NASA's file name>    MicroNet and ImageNet->MicroNet encoders

``DIR/hub`` is a valid Hugging Face cache (plain files, no symlinks): trials read the files by
path after checking their SHA-256 against the manifest, and plain smp code finds them with
``HF_HUB_CACHE=DIR/hub HF_HUB_OFFLINE=1``. A trial gets the folder from its ``weights_dir``
config value or ``$MICROSWEEP_WEIGHTS``; a changed file is refused in one line.

Example::

    fetch_weights(["resnet18"], ["imagenet", "micronet"], Path("weights"))
    problems = verify_weights(Path("weights"))          # [] when every hash matches
    path = weights_file(Path("weights"), "micronet", "resnet18")
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core import storage
from core.errors import UserError, unknown_name
from trainables.fileutil import commit_file, folder_lock, sha256_file, temp_path_beside

WEIGHTS_ENV = "MICROSWEEP_WEIGHTS"
MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
HUB_DIR = "hub"
MICRONET_DIR = "micronet"
FETCHABLE = ("imagenet", "micronet", "image-micronet")  # init sources that download
HF_FILES = ("config.json", "model.safetensors")  # what smp 0.6 downloads per encoder
WEIGHTS_ROLE, CONFIG_ROLE = "weights", "config"


@dataclass(frozen=True)
class Needed:
    """One file an (init, encoder) needs: where it lives in the folder and where it comes from."""

    init: str
    encoder: str
    relpath: str  # inside the weights folder
    source: str  # a URL, or hf://REPO@REVISION/FILE
    role: str  # "weights" (the state dict) or "config"


def resolve_weights_dir(value: str | os.PathLike[str] | None = None) -> Path | None:
    """``value`` or ``$MICROSWEEP_WEIGHTS`` as an absolute path (None when neither is set)."""
    text = str(value) if value else os.environ.get(WEIGHTS_ENV)
    if not text:
        return None
    if "://" in text:
        raise UserError(
            f"weights folder {text!r}: only local or shared-mount paths are supported "
            "(copy the folder to the nodes, e.g. with `aws s3 sync`)"
        )
    return Path(text).expanduser().absolute()


def weights_dir_from_key(value: Any, base_dir: Path) -> Path | None:
    """The experiment file's ``weights:`` key: a folder, relative to the file's folder."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | Path) or not str(value).strip():
        raise UserError(f"`weights` must be a folder path, but got {value!r}")
    text = str(value).strip()
    resolve_weights_dir(text)  # the same rules as $MICROSWEEP_WEIGHTS (no URIs yet)
    return storage.local_path(text, base_dir)


def hub_repo(encoder: str) -> tuple[str, str]:
    """smp's (repo_id, revision) of ``encoder``'s ImageNet weights."""
    import segmentation_models_pytorch as smp

    if encoder.startswith("tu-"):
        raise UserError(
            f"{encoder}: timm encoders are not fetched into a weights folder yet; "
            "pre-populate the Hugging Face cache for timm, or use init 'local:PATH'"
        )
    if encoder not in smp.encoders.encoders:
        raise unknown_name("encoder", encoder, smp.encoders.encoders)
    settings = smp.encoders.encoders[encoder]["pretrained_settings"]
    if "imagenet" not in settings:
        raise UserError(f"smp has no ImageNet weights for {encoder}")
    return settings["imagenet"]["repo_id"], settings["imagenet"]["revision"]


def needed_files(init: str, encoder: str) -> list[Needed]:
    """The files ``init`` needs for ``encoder`` (empty for sources that download nothing)."""
    if init == "imagenet":
        repo, rev = hub_repo(encoder)
        snap = f"{HUB_DIR}/models--{repo.replace('/', '--')}/snapshots/{rev}"
        return [
            Needed(init, encoder, f"{snap}/{name}", f"hf://{repo}@{rev}/{name}", role)
            for name, role in zip(HF_FILES, (CONFIG_ROLE, WEIGHTS_ROLE), strict=True)
        ]
    if init in ("micronet", "image-micronet"):
        from trainables.inits import micronet_url

        url = micronet_url(encoder, init)
        name = url.rsplit("/", 1)[-1]
        return [Needed(init, encoder, f"{MICRONET_DIR}/{name}", url, WEIGHTS_ROLE)]
    return []


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relpath: record}`` of the weights folder (empty when it has no manifest yet)."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"schema_version {data.get('schema_version')!r}")
        return dict(data["files"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(
            f"{path}: unreadable weights manifest ({err}); fetch the folder again"
        ) from None


def _write_manifest(folder: Path, records: dict[str, dict[str, Any]]) -> None:
    storage.write_json(folder / MANIFEST, {"schema_version": SCHEMA_VERSION, "files": records})


# ---------------------------------------------------------------- in the trial


def weights_file(folder: Path | None, init: str, encoder: str) -> Path | None:
    """The verified weights file ``init`` needs for ``encoder`` from the folder, or None.

    None when there is no folder or it lacks the file (the caller then uses its cache or
    downloads); a file whose size or SHA-256 differs from the manifest raises one line.
    """
    if folder is None:
        return None
    wanted = [n for n in needed_files(init, encoder) if n.role == WEIGHTS_ROLE]
    if not wanted:
        return None
    records = read_manifest(folder)
    record = records.get(wanted[0].relpath)
    if record is None:
        return None
    problem = check_file(folder, wanted[0].relpath, record)
    if problem:
        raise UserError(f"refusing weights for init {init!r}, {encoder}: {problem}")
    return folder / wanted[0].relpath


def check_file(folder: Path, relpath: str, record: dict[str, Any]) -> str | None:
    """Why the file differs from its manifest record (one line), or None."""
    path = folder / relpath
    if not path.is_file():
        return f"{path} is missing; run `microsweep weights fetch` again"
    size = path.stat().st_size
    if size != record.get("size"):
        return (
            f"{path} has {size} bytes, the manifest says {record.get('size')} "
            "(truncated or replaced); fetch it again"
        )
    actual = sha256_file(path)
    if actual != record.get("sha256"):
        return (
            f"{path} has sha256 {actual[:16]}…, the manifest says "
            f"{str(record.get('sha256'))[:16]}… (changed or corrupt); fetch it again"
        )
    return None


def verify_weights(folder: Path) -> list[str]:
    """One line per file that is missing or differs from the manifest (empty: all good)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not a weights folder (no {MANIFEST}); fetch one first")
    records = read_manifest(folder)
    return [p for rel, rec in sorted(records.items()) if (p := check_file(folder, rel, rec))]


# ---------------------------------------------------------------- fetching


Say = Callable[[str], None]


INCOMING = ".incoming"  # downloads land here, then move into place (no second copy)


def _obtain(need: Needed, folder: Path) -> tuple[Path, bool]:
    """A local copy of ``need``'s source, and whether it is a fresh download to move in.

    A copy already in the local cache (our download cache for NASA's files, the Hugging Face
    cache for smp's) is used; otherwise the file is downloaded into ``DIR/.incoming``.
    """
    name = need.relpath.rsplit("/", 1)[-1]
    if need.source.startswith("hf://"):
        from trainables.hub import cached_hub_file, hub_file

        repo, rev = hub_repo(need.encoder)
        cached = cached_hub_file(repo, rev, name)
        if cached:
            return Path(cached), False
        return Path(hub_file(need.encoder, repo, rev, name, local_dir=folder / INCOMING)), True
    from trainables.inits import PINNED_SHA256
    from trainables.weights_cache import default_cache_dir, fetch

    pinned = PINNED_SHA256.get(name)
    if (default_cache_dir() / "downloads" / name).is_file():
        return fetch(need.source, default_cache_dir(), sha256=pinned), False  # checks the hash
    return fetch(need.source, folder / INCOMING, sha256=pinned), True


def _check_loadable(path: Path, need: Needed) -> None:
    """Refuse a file that is not what it claims: plain weights (never code), valid JSON."""
    if need.role == CONFIG_ROLE:
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise UserError(f"{need.source}: config.json is not valid JSON ({err})") from None
        return
    from trainables.inits import load_weights_file

    load_weights_file(path)  # safetensors, or torch.load(weights_only=True)


def _copy_in(src: Path, fresh: bool, folder: Path, need: Needed) -> dict[str, Any]:
    _check_loadable(src, need)  # src keeps its file name: the loader goes by the suffix
    dest = folder / need.relpath
    tmp = temp_path_beside(dest)
    try:
        if fresh:
            os.replace(src, tmp)  # same file system: a download is moved, not copied
        else:
            shutil.copyfile(src, tmp)
        sha = sha256_file(tmp)
        commit_file(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "init": need.init,
        "encoder": need.encoder,
        "source": need.source,
        "sha256": sha,
        "size": dest.stat().st_size,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def fetch_weights(
    encoders: Iterable[str], inits: Iterable[str], folder: Path, *, say: Say = print
) -> list[str]:
    """Fetch every file of each (init, encoder) into ``folder``; returns one line per failure.

    Files already present with their recorded hash are kept; each new file is checked
    (plain weights, valid JSON), hashed, put in place atomically and recorded in the manifest
    at once, so an interrupted fetch keeps what it got.
    """
    folder = Path(folder)
    pairs = [(i, e) for i in inits for e in encoders]
    return fetch_pairs(pairs, folder, say=say)


def fetch_pairs(pairs: Iterable[tuple[str, str]], folder: Path, *, say: Say = print) -> list[str]:
    """As :func:`fetch_weights`, for explicit (init, encoder) pairs."""
    failures: list[str] = []
    for init, encoder in dict.fromkeys(pairs):
        if init not in FETCHABLE:
            raise unknown_name("init source to fetch", init, FETCHABLE)
        try:
            needs = needed_files(init, encoder)
        except UserError as err:
            failures.append(f"{init} {encoder}: {err}")
            continue
        for need in needs:
            try:
                say(_fetch_one(need, folder))
            except UserError as err:
                failures.append(f"{init} {encoder}: {err}")
                break
    return failures


def _fetch_one(need: Needed, folder: Path) -> str:
    label = f"{need.init} {need.encoder}: {need.relpath}"
    with folder_lock(folder):
        record = read_manifest(folder).get(need.relpath)
    if record and check_file(folder, need.relpath, record) is None:
        return f"{label} already there"
    try:
        src, fresh = _obtain(need, folder)
    except UserError as err:  # the caches' advice (copy it to ...) does not apply here
        raise UserError(str(err).split(";")[0]) from None
    new = _copy_in(src, fresh, folder, need)
    with folder_lock(folder):
        records = read_manifest(folder)
        records[need.relpath] = new
        _write_manifest(folder, records)
    return f"{label} ({new['size'] / 1e6:.1f} MB, sha256 {new['sha256'][:12]}…)"


def list_weights(folder: Path, *, check: bool = True) -> list[dict[str, Any]]:
    """Rows (init, encoder, file, size, verified) of the folder, sorted by init and encoder."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise UserError(f"{folder} is not a weights folder (no {MANIFEST}); fetch one first")
    rows = []
    for rel, rec in read_manifest(folder).items():
        problem = check_file(folder, rel, rec) if check else None
        rows.append(
            {
                "init": rec.get("init"),
                "encoder": rec.get("encoder"),
                "file": rel,
                "size": rec.get("size"),
                "verified": "no" if problem else ("yes" if check else "-"),
            }
        )
    return sorted(rows, key=lambda r: (str(r["init"]), str(r["encoder"]), r["file"]))


def has_weights(folder: Path | None, init: str, encoder: str) -> bool:
    """Whether the folder's manifest records every file of (init, encoder) and they exist with
    their recorded sizes (cheap: no hashing; trials hash)."""
    if folder is None or not (Path(folder) / MANIFEST).is_file():
        return False
    records = read_manifest(folder)
    for need in needed_files(init, encoder):
        rec = records.get(need.relpath)
        path = Path(folder) / need.relpath
        if rec is None or not path.is_file() or path.stat().st_size != rec.get("size"):
            return False
    return True
