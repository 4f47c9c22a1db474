"""One generic registry, the shape of every extension point (tasks, strategies, schedulers).

Entries register themselves next to their implementation; a name registered twice is an error;
an unknown name is answered with the choices and the nearest match.

Example::

    SCHEDULERS: Registry[SchedulerSpec] = Registry("scheduler")

    @SCHEDULERS.register("asha")
    class Asha(SchedulerSpec): ...

    SCHEDULERS.get("ashaa")   # UserError: unknown scheduler 'ashaa'; did you mean 'asha'? ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from core.errors import unknown_name

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to entries of one kind; ``kind`` is the word used in error messages."""

    def __init__(self, kind: str, *, hint: str = "") -> None:
        self.kind, self.hint = kind, hint
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda entry: self.add(name, entry)

    def get(self, name: str) -> T:
        """The entry; an unknown name is a one-line UserError with the nearest match."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise unknown_name(self.kind, str(name), self._entries, self.hint) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
