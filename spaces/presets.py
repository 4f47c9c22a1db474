"""Search-space presets: experiment files shipped in ``spaces/presets/`` for users to copy.

>>> list_presets()
['demo', 'new-material', 'paper']
>>> preset_path("paper")  # a Path to the YAML file
"""

from __future__ import annotations

from pathlib import Path

from core.errors import closest

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    """The preset's file; ``ValueError`` with the choices and nearest match when unknown."""
    path = PRESET_DIR / f"{name}.yaml"
    if not path.is_file():
        choices = list_presets()
        close = closest(name, choices, cutoff=0.6)
        hint = f"; did you mean '{close}'?" if close else ""
        raise ValueError(f"unknown preset '{name}'{hint} (choose from: {', '.join(choices)})")
    return path


def describe(name: str) -> str:
    """The first comment line of the preset file (its one-line summary)."""
    for line in preset_path(name).read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""
