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

import yaml

from core.errors import UserError
from core.storage import local_path
from core.yamlio import load_yaml
from trainables.data.classmaps import ClassMap, get_class_map

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
            root = local_path(root_raw, base_dir)
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


def load_data_spec(
    target: Path, *, classes: object = None, split_file: str | None = None
) -> DataSpec:
    """A :class:`DataSpec` from a dataset folder or a YAML file, with optional overrides
    (see :func:`data_mapping`)."""
    mapping, base_dir = data_mapping(target, classes=classes, split_file=split_file)
    return DataSpec.from_mapping(mapping, base_dir=base_dir)


def data_mapping(
    target: Path, *, classes: object = None, split_file: str | None = None
) -> tuple[dict[str, object], Path]:
    """The ``data:`` block for a dataset folder or a YAML file, and the folder it is read from.

    ``target`` is a dataset root, or a YAML file holding a ``data:`` block (or the block itself
    at top level) whose relative ``root`` is taken from the YAML file's folder. ``split_file``
    is relative to the root unless absolute; a path found from the current folder also works.
    """
    target = Path(target).expanduser()
    if target.is_dir():
        mapping: dict[str, object] = {"root": str(target.resolve())}
        base_dir = Path.cwd()
    elif target.is_file():
        mapping, base_dir = _read_block(target), target.resolve().parent
    else:
        raise UserError(f"'{target}' does not exist; give a dataset folder or a YAML file")
    if classes is not None:
        mapping["classes"] = classes
    if split_file is not None:
        mapping["split_file"] = _cli_split_file(mapping, base_dir, split_file)
    if mapping.get("classes") is None:
        raise UserError(
            f"no classes for '{target}': pass --classes (superalloy, ebc) "
            "or set data.classes in the YAML file"
        )
    return mapping, base_dir


def _read_block(path: Path) -> dict[str, object]:
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"{path}: cannot read YAML ({first})") from None
    if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
        return dict(doc["data"])
    if isinstance(doc, dict) and ("root" in doc or "split_file" in doc):
        return dict(doc)
    raise UserError(f"{path}: expected a `data:` block with `root:` (or the block at top level)")


def _cli_split_file(mapping: dict[str, object], base_dir: Path, split_file: str) -> str:
    path = Path(split_file).expanduser()
    root = mapping.get("root")
    if path.is_absolute() or root is None:
        return str(path.resolve()) if root is not None else str(path)
    if (base_dir / str(root) / path).is_file() or not path.is_file():
        return str(path)  # relative to root, as in the data block
    return str(path.resolve())  # found from the current folder
