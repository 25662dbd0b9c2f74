"""The root of churnwatch's exception tree.

Every package raises subclasses of :class:`ChurnwatchError` named after the
condition (each package has its own ``errors`` module), so a caller can catch
"anything churnwatch refused" in one place, while poison input never travels
as an exception (it becomes a dead-letter record). It lives in the lowest
layer so that every package can build on it.
"""

from __future__ import annotations


class ChurnwatchError(Exception):
    """Base class of every error churnwatch raises on purpose."""


class DependencyUnavailable(ChurnwatchError):
    """A dependency (the broker, Redis, PostgreSQL) did not answer: transient.

    Kept apart from poison input on purpose: the same call may succeed once the
    dependency is back, so the dataflow retries it with back-off (holding its
    input meanwhile) instead of stopping, and nothing is dead-lettered for it.
    ``dependency`` names what failed (``kafka``, ``redis``, ``postgres``).
    """

    def __init__(self, dependency: str, problem: str) -> None:
        self.dependency = dependency
        self.problem = problem
        super().__init__(f"{dependency} unavailable: {problem}")
