"""``--resume``: check Ray's saved experiment state before ``Tuner.restore`` touches it.

Ray restarts a brand-new experiment when the newest ``experiment_state-*.json`` is truncated
(and returns normally, with only the new trials). We refuse instead, with one line naming the
file, so that a resumed sweep never silently loses or duplicates configurations. The run folder
may be a local path or a URI (:mod:`core.storage`).
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import UserError
from core.storage import Location

STATE_GLOB = "experiment_state-*.json"
STATE_KEYS = ("trial_data", "runner_data")
TUNER_FILE = "tuner.pkl"  # Ray's saved Tuner: its presence means a sweep started in the folder


def newest_state_file(run_dir: str | Path | Location) -> Location | None:
    """The state file Ray restores from (names carry a sortable timestamp)."""
    files = Location.parse(run_dir).glob(STATE_GLOB)
    return files[-1] if files else None


def check_resumable(run_dir: str | Path | Location) -> Location:
    """The state file to resume from; :class:`UserError` (one line) when it cannot be used."""
    run_dir = Location.parse(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"nothing to resume: run folder '{run_dir}' does not exist")
    if not (run_dir / TUNER_FILE).is_file():
        raise UserError(
            f"cannot resume: '{run_dir / TUNER_FILE}' is missing (the sweep never started "
            "there); run without --resume to start it"
        )
    state = newest_state_file(run_dir)
    if state is None:
        raise UserError(
            f"cannot resume: no {STATE_GLOB} in '{run_dir}' (killed before its first "
            "snapshot); remove the folder and start again"
        )
    _check_state(state)
    return state


def _check_state(path: Location) -> None:
    try:
        data = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(
            f"cannot resume: Ray's state file '{path}' is corrupt or truncated ({_short(err)}); "
            "refusing to start a new experiment over it"
        ) from None
    missing = [k for k in STATE_KEYS if not isinstance(data, dict) or k not in data]
    if missing or not isinstance(data["trial_data"], list):
        raise UserError(
            f"cannot resume: Ray's state file '{path}' lacks {', '.join(missing) or 'trial_data'}; "
            "refusing to start a new experiment over it"
        )


def _short(err: Exception) -> str:
    return str(err).splitlines()[0][:120]
