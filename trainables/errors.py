"""The one exception type for bad user input.

Anything a user can fix (a wrong key, a missing file, a bad mask) is raised as
:class:`UserError` with a one-line message naming what, where and how to fix it.
The CLI prints the message and exits with code 2, without a traceback.
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


def unknown_name(kind: str, name: str, choices: Iterable[str], hint: str = "") -> UserError:
    """``unknown encoder 'resnet81'; did you mean 'resnet18'? (run 'microsweep list encoders')``."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {close[0]!r}?"
    if hint:
        msg += f" ({hint})"
    elif len(choices) <= 12:
        msg += f"; choose from: {', '.join(choices)}"
    return UserError(msg)
