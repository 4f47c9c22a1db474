"""The download cache for published weights: atomic files, full SHA-256 pinned in a manifest.

``CACHE/manifest.json`` maps each file name to the URL it came from, its size and SHA-256.
The first download records the hash (unless one is pinned in code); from then on a cached or
re-downloaded file whose bytes differ is refused with one line. ``file://`` URLs work, which is
how the tests (and air-gapped clusters with a local mirror) use it.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from core import storage
from core.errors import UserError
from trainables.fileutil import (
    CHUNK,
    commit_file,
    folder_lock,
    sha256_file,
    temp_path_beside,
)

CACHE_ENV = "MICROSWEEP_CACHE"
MANIFEST = "manifest.json"
SCHEMA_VERSION = 1
TIMEOUT_S = 60


def default_cache_dir() -> Path:
    """``$MICROSWEEP_CACHE`` or ``~/.cache/microsweep``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "microsweep")


def _read_manifest(cache_dir: Path) -> dict[str, dict[str, object]]:
    path = cache_dir / MANIFEST
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dict(data["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path}: unreadable cache manifest ({err}); delete the cache folder"
        ) from None


def _download(url: str, dest: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(dest, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done, shown = 0, 0
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                done += len(block)
                if total > 8 * CHUNK and done * 10 // total > shown:
                    shown = done * 10 // total
                    print(f"  {url.rsplit('/', 1)[-1]}: {10 * shown}%", file=sys.stderr)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", None) or err
        raise UserError(
            f"cannot download {url} ({reason}); fetch it where there is internet and use init "
            f"'local:PATH', or copy it to {dest.parent / url.rsplit('/', 1)[-1]}"
        ) from None


def _check(path: Path, expected: str | None, url: str) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        raise UserError(
            f"{path.name} from {url} has sha256 {actual[:16]}…, expected {expected[:16]}… "
            f"(recorded in {MANIFEST} or pinned); refusing it — delete the file to fetch it again"
        )
    return actual


def fetch(url: str, cache_dir: Path, *, sha256: str | None = None) -> Path:
    """The cached copy of ``url``, downloading it once; its SHA-256 must match the record."""
    cache_dir = Path(cache_dir)
    name = url.rsplit("/", 1)[-1]
    if not name or name in (".", ".."):
        raise UserError(f"cannot cache {url}: the URL does not end in a file name")
    dest = cache_dir / "downloads" / name
    with folder_lock(cache_dir):
        records = _read_manifest(cache_dir)
        expected = sha256 or records.get(name, {}).get("sha256")
        if not dest.is_file():
            tmp = temp_path_beside(dest)
            try:
                print(f"downloading {url} -> {dest}", file=sys.stderr)
                _download(url, tmp)
                actual = _check(tmp, expected, url)
                commit_file(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        else:
            actual = _check(dest, expected, url)
        if name not in records:
            records[name] = {
                "url": url,
                "sha256": actual,
                "size": dest.stat().st_size,
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            storage.write_json(
                cache_dir / MANIFEST, {"schema_version": SCHEMA_VERSION, "files": records}
            )
    return dest
