"""Errors of the analysis package (which may not import ``trainables``)."""

from __future__ import annotations


class ReportError(ValueError):
    """Bad input to a report (a path that is not a run folder, an unknown factor): one line
    naming the file or option and how to fix it. The CLI prints it without a traceback."""


class StorageError(ReportError):
    """A run location that cannot be reached, read or written: one line naming the path or URI,
    what failed and how to fix it (a ReportError, so report callers catch one type; the sweep
    driver turns it into a UserError)."""
