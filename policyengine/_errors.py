"""Exceptions raised by policyengine.

The tree::

    Exception
    └── PolicyError          a policy file (or layer) is unusable; nothing was applied
                             .problems: every Problem found, in file order

``Engine.evaluate()`` never raises: a response or a network failure it cannot
make sense of becomes an ``Action`` whose explanation says so.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

__all__ = ["PolicyError", "Problem"]


@attrs.frozen
class Problem:
    """One thing wrong with a policy file.

    Attributes:
        file: The file (or ``<default>``, ``<dict>``) the bad value came from.
        path: Where in that file: a key path such as ``$.rules[2].backoff.max_delay``,
            or ``line 3, column 7`` for a syntax error; empty for the whole file.
        message: What is wrong, and where it helps, what to do instead.
    """

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        if self.path:
            return f"{self.file}: {self.path}: {self.message}"
        return f"{self.file}: {self.message}"


class PolicyError(ValueError):
    """A policy could not be loaded; the policy in use is unchanged.

    ``str(error)`` lists every problem, one per line, as
    ``file: key path: what is wrong``.
    """

    problems: tuple[Problem, ...]

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[PolicyError], tuple[tuple[Problem, ...]]]:
        return (type(self), (self.problems,))
