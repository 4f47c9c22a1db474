"""The one family of exceptions for bad user input, and the "did you mean" helper.

Anything a user can fix (a wrong key, a missing file, a bad mask, an unreachable bucket) is
raised as :class:`UserError` with a one-line message naming what, where and how to fix it. The
CLI prints the message and exits with code 2, without a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(ValueError):
    """Bad input that the user can fix; ``str(err)`` is one line."""


class DataError(UserError):
    """A dataset problem; ``problems`` holds one line per problem found."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        head = self.problems[0] if self.problems else "invalid dataset"
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(head + more)


class Interrupted(UserError):
    """A sweep stopped (Ctrl+C) with trials unfinished; ``--resume`` continues them. The CLI
    exits 130 for it, as for any interrupt."""


class ReportError(UserError):
    """Bad input to a report (a path that is not a run folder, an unknown factor)."""


class StorageError(ReportError):
    """A run location that cannot be reached, read or written: one line naming the path or
    URI, what failed and how to fix it."""


def closest(name: str, choices: Iterable[str], *, cutoff: float = 0.5) -> str | None:
    """The nearest of ``choices`` to ``name`` (difflib), or None."""
    found = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def unknown_name(
    kind: str, name: str, choices: Iterable[str], hint: str = "", *, quote: str = "'"
) -> UserError:
    """``unknown encoder 'resnet81'; did you mean 'resnet18'? (run 'microsweep list encoders')``.

    ``quote`` wraps names (``"`"`` for experiment-file keys); more than 12 choices are not
    listed unless ``hint`` says where to find them.
    """
    choices = sorted(str(c) for c in choices)
    close = closest(name, choices)
    msg = f"unknown {kind} {quote}{name}{quote}"
    if close:
        msg += f"; did you mean {quote}{close}{quote}?"
    if hint:
        msg += f" ({hint})"
    elif len(choices) <= 12:
        msg += f"; choose from: {', '.join(choices)}"
    return UserError(msg)


class ConfigError(UserError):
    """A bad value of one config key; ``located(where)`` names it as the user wrote it.

    ``ConfigError("lr", "must be > 0, but got -1")`` reads "`lr` must be > 0, but got -1";
    ``.located("train.lr")`` reads "`train.lr` must be > 0, but got -1".
    """

    def __init__(self, key: str, rule: str) -> None:
        self.key, self.rule = key, rule
        super().__init__(f"`{key}` {rule}")

    def located(self, where: str) -> UserError:
        return UserError(f"`{where}` {self.rule}")
