"""Data problems: each names the file at fault and the fix, and many travel together.

`data check` must report every problem of a folder at once, so readers collect `Problem`s
instead of raising on the first; `DataError` carries the whole list.
"""

from __future__ import annotations

from dataclasses import dataclass

from thtl_bench.errors import UserError


@dataclass(frozen=True)
class Problem:
    code: str  # short kind, e.g. "unreadable", "orphan_image", "patient_leak"
    path: str  # the file (or file:line) at fault
    message: str
    fix: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.path}: {self.message} (fix: {self.fix})"


class DataError(UserError, ValueError):
    """One or many data problems; `problems` keeps them all for programmatic use."""

    def __init__(self, problems: list[Problem] | Problem | str, header: str | None = None):
        if isinstance(problems, (Problem, str)):
            problems = [problems]
        self.problems = list(problems)
        lines = [str(p) for p in self.problems]
        shown = lines[:20] + ([f"... and {len(lines) - 20} more (run `thtl-bench data check`)"] if len(lines) > 20 else [])
        head = header or f"{len(lines)} data problem(s)"
        if len(lines) == 1 and header is None:
            super().__init__(lines[0])
        else:
            super().__init__(head + ":\n  " + "\n  ".join(shown))


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
