"""Class maps: how mask values or colours become class indices.

A class map names the classes (index 0 is the "everything else" class) and lists, per class,
the mask values that belong to it: single-channel indices (``1``) or RGB colours
(``[0, 0, 255]``). One class may be marked ``rest``: it takes every value no other class
claims (the superalloy overlays carry grey image values outside the precipitates). Without a
``rest`` class, values no class lists are *disallowed* and reported by ``data check``.

Explicit maps, as written in a ``data:`` block::

    classes:                       # single-channel index masks
      background: {rest: true}     # or: background: rest
      oxide: 1
    classes:                       # RGB(A) overlay masks
      matrix: rest
      secondary: [0, 0, 255]
      tertiary: [255, 0, 0]
    classes:                       # several values for one class
      background: {values: [0, 2]}
      oxide: 1

Presets (:func:`get_class_map`, :func:`list_class_maps`): ``superalloy``, ``ebc``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from core.errors import UserError, unknown_name

Value = int | tuple[int, int, int]

REST_WORDS = ("rest", "everything else")


@dataclass(frozen=True)
class ClassMap:
    """Class names and the mask values of each; see the module docstring for the syntax."""

    name: str
    classes: tuple[str, ...]
    values: tuple[tuple[Value, ...], ...]  # per class, the mask values it takes
    rest: bool  # class 0 takes every value no other class lists

    @property
    def colour(self) -> bool:
        """True when the map lists RGB colours (masks are read as RGB), else index values."""
        return any(isinstance(v, tuple) for vals in self.values for v in vals)

    def allowed(self) -> list[Value]:
        return sorted((v for vals in self.values for v in vals), key=_sort_key)

    def encode(self, mask: np.ndarray) -> tuple[np.ndarray, int, list[Value]]:
        """Turn a raw mask into HxW uint8 class indices (vectorised).

        Returns ``(indices, n_disallowed, examples)``: the number of pixels whose value no class
        lists (only possible without a ``rest`` class; they are set to class 0) and up to five
        such values, most frequent first.
        """
        keys, packed = _mask_keys(mask, colour=self.colour)
        out = np.zeros(keys.shape, dtype=np.uint8)
        matched = np.zeros(keys.shape, dtype=bool)
        for index, vals in enumerate(self.values):
            for value in vals:
                hit = keys == _pack(value)
                out[hit] = index
                matched |= hit
        if self.rest:
            return out, 0, []
        bad = ~matched
        n_bad = int(bad.sum())
        if n_bad == 0:
            return out, 0, []
        found, counts = np.unique(keys[bad], return_counts=True)
        top = found[np.argsort(-counts, kind="stable")[:5]]
        return out, n_bad, [_unpack(int(k), packed) for k in top]


def _sort_key(v: Value) -> tuple[int, ...]:
    return (v,) if isinstance(v, int) else v


def _pack(value: Value) -> int:
    if isinstance(value, int):
        return value
    r, g, b = value
    return (r << 16) | (g << 8) | b


def _unpack(key: int, packed: bool) -> Value:
    if not packed:
        return key
    return ((key >> 16) & 255, (key >> 8) & 255, key & 255)


def _mask_keys(mask: np.ndarray, *, colour: bool) -> tuple[np.ndarray, bool]:
    """One integer per pixel: the index value, or the packed RGB colour for colour maps."""
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim == 2:
        if colour:  # a grey mask against a colour map: value v is the colour (v, v, v)
            m = mask.astype(np.uint32)
            return (m << 16) | (m << 8) | m, True
        return mask.astype(np.int64, copy=False), False
    if colour:
        rgb = mask[..., :3].astype(np.uint32)
        return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2], True
    rgb = mask[..., :3]
    if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()):
        raise UserError(
            "colour mask, but the class map lists index values; "
            "give RGB triples in `classes` (e.g. secondary: [0, 0, 255])"
        )
    return rgb[..., 0].astype(np.int64), False


# ---------------------------------------------------------------------------------------------
# registry

_PRESETS: dict[str, Callable[[], ClassMap]] = {}


def register_class_map(name: str) -> Callable[[Callable[[], ClassMap]], Callable[[], ClassMap]]:
    def deco(fn: Callable[[], ClassMap]) -> Callable[[], ClassMap]:
        if name in _PRESETS:
            raise ValueError(f"class map preset {name!r} is registered twice")
        _PRESETS[name] = fn
        return fn

    return deco


@register_class_map("superalloy")
def _superalloy() -> ClassMap:
    """RGBA overlays: blue secondary, red tertiary precipitates, every other colour matrix."""
    return ClassMap(
        name="superalloy",
        classes=("matrix", "secondary", "tertiary"),
        values=((), ((0, 0, 255),), ((255, 0, 0),)),
        rest=True,
    )


@register_class_map("ebc")
def _ebc() -> ClassMap:
    """Index masks 0 background, 1 oxide, 2 crack; cracks count as background (the paper)."""
    return ClassMap(name="ebc", classes=("background", "oxide"), values=((0, 2), (1,)), rest=False)


def list_class_maps() -> list[str]:
    return sorted(_PRESETS)


def get_class_map(spec: str | Mapping[str, object], *, key: str = "data.classes") -> ClassMap:
    """A preset by name, or an explicit map (see the module docstring); ``UserError`` if bad."""
    if isinstance(spec, ClassMap):
        return spec
    if isinstance(spec, str):
        if spec not in _PRESETS:
            raise unknown_name("class map", spec, _PRESETS, hint="or give an explicit mapping")
        return _PRESETS[spec]()
    if isinstance(spec, Mapping):
        return parse_class_map(spec, key=key)
    raise UserError(
        f"`{key}` must be a preset name ({', '.join(list_class_maps())}) or a mapping "
        f"class -> value, but got {type(spec).__name__}"
    )


def parse_class_map(spec: Mapping[str, object], *, key: str = "data.classes") -> ClassMap:
    """Parse an explicit map; the ``rest`` class (if any) becomes index 0."""
    if len(spec) < 2:
        raise UserError(f"`{key}` needs at least two classes, but got {len(spec)}")
    parsed = [(str(name), *_parse_entry(value, f"{key}.{name}")) for name, value in spec.items()]
    rest = [name for name, _, is_rest in parsed if is_rest]
    if len(rest) > 1:
        raise UserError(f"`{key}`: only one class may be `rest`, but got {', '.join(rest)}")
    parsed.sort(key=lambda item: not item[2])  # the rest class first, others in given order
    _check_values(parsed, key)
    return ClassMap(
        name="custom",
        classes=tuple(name for name, _, _ in parsed),
        values=tuple(vals for _, vals, _ in parsed),
        rest=bool(rest),
    )


def _check_values(parsed: list[tuple[str, tuple[Value, ...], bool]], key: str) -> None:
    seen: dict[Value, str] = {}
    kinds = set()
    for name, vals, is_rest in parsed:
        if not vals and not is_rest:
            raise UserError(f"`{key}.{name}` lists no values; give an index, [r, g, b] or `rest`")
        for v in vals:
            kinds.add(type(v))
            if v in seen:
                raise UserError(
                    f"`{key}`: value {list(_sort_key(v))} is given to both {seen[v]!r} and {name!r}"
                )
            seen[v] = name
    if len(kinds) > 1:
        raise UserError(f"`{key}` mixes index values and RGB triples; use one kind per map")


def _parse_entry(value: object, key: str) -> tuple[tuple[Value, ...], bool]:
    """``(values, is_rest)`` for one class entry."""
    if isinstance(value, str):
        if value.strip().lower() in REST_WORDS:
            return (), True
        raise UserError(
            f"`{key}` must be an index, [r, g, b], `rest` or a mapping, but got {value!r}"
        )
    if isinstance(value, Mapping):
        unknown = set(value) - {"rest", "values"}
        if unknown:
            raise UserError(
                f"`{key}` has unknown key(s) {sorted(map(str, unknown))}; allowed: rest, values"
            )
        is_rest = value.get("rest", False)
        if not isinstance(is_rest, bool):
            raise UserError(f"`{key}.rest` must be true or false, but got {is_rest!r}")
        raw = value.get("values", [])
        if not isinstance(raw, list):
            raw = [raw]
        return tuple(_parse_value(v, f"{key}.values") for v in raw), is_rest
    return (_parse_value(value, key),), False


def _parse_value(value: object, key: str) -> Value:
    if isinstance(value, bool):
        raise UserError(f"`{key}` must be an index or [r, g, b], but got {value!r}")
    if isinstance(value, int):
        if not 0 <= value <= 65535:
            raise UserError(f"`{key}` must be an index in 0..65535, but got {value}")
        return value
    if _is_rgb(value):
        return (int(value[0]), int(value[1]), int(value[2]))  # type: ignore[index]
    raise UserError(
        f"`{key}` must be an index or an RGB triple [r, g, b] of 0..255, "
        f"but got {value!r} (several values: {{values: [0, 2]}})"
    )


def _is_rgb(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) == 3
        and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in value)
    )
