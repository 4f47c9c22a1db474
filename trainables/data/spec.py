"""The ``data:`` block of an experiment file, validated once into a frozen :class:`DataSpec`.

```yaml
data:
  root: path/to/Super1            # dataset folder; relative to the YAML file's folder
  split_file: ../splits/Super3.yaml   # optional; relative to root unless absolute
  classes: superalloy             # preset name or explicit mapping (see classmaps)
  name: Super3                    # optional label; default: split file's `name` or root name
```
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainables.data.classmaps import ClassMap, get_class_map
from trainables.errors import UserError

KEYS = ("root", "split_file", "classes", "name")


@dataclass(frozen=True)
class DataSpec:
    """A validated ``data:`` block; paths are absolute."""

    root: Path
    classes: ClassMap
    split_file: Path | None = None
    name: str | None = None

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, object], *, base_dir: Path) -> DataSpec:
        """Validate a ``data:`` mapping; relative ``root`` is taken from ``base_dir``.

        >>> DataSpec.from_mapping({"root": "Super1", "classes": "superalloy"}, base_dir=nasa)
        """
        if not isinstance(mapping, Mapping):
            raise UserError(
                f"`data` must be a mapping with keys {', '.join(KEYS)}, "
                f"but got {type(mapping).__name__}"
            )
        _check_keys(mapping)
        split_file = _opt_str(mapping, "split_file")
        root_raw = _opt_str(mapping, "root")
        if root_raw is None and split_file is None:
            raise UserError("`data.root` is missing; give the dataset folder")
        base_dir = Path(base_dir)
        if root_raw is None:  # only a split file: it is found from base_dir, root is its folder
            split_path = _existing_file(base_dir / Path(split_file).expanduser(), "split_file")
            root = split_path.parent
        else:
            root = (base_dir / Path(root_raw).expanduser()).resolve()
            if not root.is_dir():
                raise UserError(f"`data.root`: folder '{root}' does not exist")
            split_path = None
            if split_file is not None:
                split_path = _existing_file(root / Path(split_file).expanduser(), "split_file")
        if "classes" not in mapping or mapping["classes"] is None:
            raise UserError(
                "`data.classes` is missing; give a preset (superalloy, ebc) "
                "or a mapping class -> value"
            )
        classes = get_class_map(mapping["classes"], key="data.classes")  # type: ignore[arg-type]
        return cls(
            root=root, classes=classes, split_file=split_path, name=_opt_str(mapping, "name")
        )


def _check_keys(mapping: Mapping[str, object]) -> None:
    for key in mapping:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"; did you mean `data.{close[0]}`?" if close else ""
            raise UserError(f"unknown key `data.{key}`{hint} (allowed: {', '.join(KEYS)})")


def _opt_str(mapping: Mapping[str, object], key: str) -> str | None:
    value = mapping.get(key)
    if value is None:
        return None
    if not isinstance(value, str | Path) or not str(value).strip():
        raise UserError(f"`data.{key}` must be a non-empty string, but got {value!r}")
    return str(value)


def _existing_file(path: Path, key: str) -> Path:
    path = path.resolve()
    if not path.is_file():
        raise UserError(
            f"`data.{key}`: file '{path}' does not exist "
            f"({key} is relative to data.root unless absolute)"
        )
    return path
