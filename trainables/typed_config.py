"""Typed, frozen trial configs built once from Ray's config dict, the same way for every task.

A task's config is a frozen dataclass deriving :class:`TypedConfig`: :meth:`from_dict` rejects
unknown keys (with the nearest valid one), converts what YAML and Ray produce (ints for floats,
numeric strings such as ``'1e-3'`` for numbers, booleans for ``Literal['true', 'false']``
flags, paths for strings), checks ``Literal`` choices, then runs the class's own
:meth:`validate`. Every problem is a :class:`~core.errors.ConfigError` naming the key.

Example::

    @dataclass(frozen=True)
    class MyConfig(TypedConfig):
        lr: float = 1e-3
        precision: Literal["fp32", "bf16"] = "fp32"

    MyConfig.from_dict({"lr": "3e-4"}).lr   # 0.0003
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, TypeVar

from core.errors import ConfigError, closest, unknown_name

C = TypeVar("C", bound="TypedConfig")


class TypedConfig:
    """Base of the tasks' frozen config dataclasses."""

    WHAT: ClassVar[str] = "trial config key"  # the word for a key in "unknown ..." errors

    @classmethod
    def from_dict(cls: type[C], config: Mapping[str, Any]) -> C:
        hints = _hints(cls)
        for key in config:
            if key not in hints:
                raise unknown_name(cls.WHAT, str(key), hints, quote="`")
        values = {k: coerce(k, v, hints[k]) for k, v in config.items()}
        cfg = cls(**values)  # type: ignore[call-arg]
        cfg.validate()
        return cfg

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(_hints(cls))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def validate(self) -> None:
        """Rules across fields (ranges, multiples); raise :class:`ConfigError`."""


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` names, or a ConfigError saying what was expected."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (hint,) = [a for a in args if a is not type(None)]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is Literal:
        return _literal(key, value, args)
    if hint is float:
        return _number(key, value)
    if hint is int:
        return _integer(key, value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, but got {value!r}")
        return value
    if hint is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, but got {value!r}")
        return value
    return value


def _literal(key: str, value: Any, choices: tuple[Any, ...]) -> Any:
    if isinstance(value, bool) and "true" in choices:
        value = "true" if value else "false"
    if value not in choices:
        close = closest(str(value), [str(c) for c in choices])
        hint = f"; did you mean {close!r}?" if close else ""
        listed = ", ".join(map(str, choices))
        raise ConfigError(key, f"must be one of {listed}, but got {value!r}{hint}")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(key, f"must be a number, but got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(key, f"must be a number, but got {value!r}")
    return float(value)


def _integer(key: str, value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str):
        number = _number(key, value)
        if not (math.isfinite(number) and number.is_integer()):
            raise ConfigError(key, f"must be an integer, but got {value!r}")
        value = int(number)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(key, f"must be an integer, but got {value!r}")
    return value


def positive(cfg: Any, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ConfigError(name, f"must be > 0, but got {value}")


def in_range(cfg: Any, name: str, low: float, high: float) -> None:
    value = getattr(cfg, name)
    if not low <= value <= high:
        raise ConfigError(name, f"must be in [{low}, {high}], but got {value}")


def multiple_of(cfg: Any, step: int, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if value % step:
            raise ConfigError(name, f"must be a multiple of {step}, but got {value}")
