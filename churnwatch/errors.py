"""The root of churnwatch's exception tree.

Every package raises subclasses of :class:`ChurnwatchError` named after the
condition, so a caller can catch "anything churnwatch refused" in one place
while poison input never travels as an exception (it becomes a DLQ record).
"""

from __future__ import annotations


class ChurnwatchError(Exception):
    """Base class of every error churnwatch raises on purpose."""


class ConfigurationError(ChurnwatchError):
    """A setting is missing, malformed or inconsistent."""

    def __init__(self, variable: str, problem: str) -> None:
        self.variable = variable
        self.problem = problem
        super().__init__(f"{variable}: {problem}")


class LocalStackError(ChurnwatchError):
    """An embedded server of the local stack failed to start or stop."""

    def __init__(self, service: str, problem: str) -> None:
        self.service = service
        self.problem = problem
        super().__init__(f"local stack {service}: {problem}")
