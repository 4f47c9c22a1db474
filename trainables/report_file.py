"""``report.json``: the small file every checkpoint folder carries beside its state.

It holds the metrics reported with the checkpoint, the names and sizes of the files a
restore needs, and ``needs``: files outside the folder that a restore needs too, relative to
the trial's folder, with their sizes (the best weights, stored once per trial:
:mod:`trainables.best_store`). ``--resume`` reads it (:mod:`search.repair`) to continue a trial
from a checkpoint that Ray's last state snapshot does not know about, and to tell a complete
checkpoint from one whose copy to storage a crash cut short (a file shows a smaller size, or is
missing). No torch here: the driver reads it without loading a model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_FILE = "report.json"


def write_report(
    folder: Path, metrics: dict[str, Any], *, needs: dict[str, int] | None = None
) -> Path:
    """Write ``folder/report.json`` listing the files already in ``folder`` with their sizes
    (and ``needs``, see the module docstring); returns its path.

    ``metrics`` must be JSON-serialisable (plain scalars). Call it once the state is saved:
    files written later (predictions) are outputs, not needed to restore."""
    folder = Path(folder)
    files = {
        p.name: p.stat().st_size
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != REPORT_FILE
    }
    path = folder / REPORT_FILE
    report: dict[str, Any] = {"metrics": metrics, "files": files}
    if needs:
        report["needs"] = dict(needs)
    path.write_text(json.dumps(report, sort_keys=True))
    return path


def parse_report(data: bytes) -> tuple[dict[str, Any], dict[str, int]] | None:
    """``(metrics, {file: size})`` from a report's bytes; None when it is not a complete one."""
    try:
        report = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(report, dict):
        return None
    metrics, files = report.get("metrics"), report.get("files")
    if not isinstance(metrics, dict) or not isinstance(files, dict):
        return None
    if not all(isinstance(size, int) for size in files.values()):
        return None
    return metrics, files


def parse_needs(data: bytes) -> dict[str, int] | None:
    """A complete report's ``needs`` (``{path relative to the trial folder: size}``, empty when
    it names none); None when the bytes are not a complete report."""
    if parse_report(data) is None:
        return None
    needs = json.loads(data).get("needs", {})
    if not isinstance(needs, dict) or not all(isinstance(n, int) for n in needs.values()):
        return None
    return needs
