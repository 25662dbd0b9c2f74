"""Errors of the application shell: settings and the embedded local stack.

The root, :class:`~schemas.errors.ChurnwatchError`, lives in ``schemas`` (the
lowest layer) so that every package can subclass it.
"""

from __future__ import annotations

from schemas.errors import ChurnwatchError


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
__all__ = ["ChurnwatchError", "ConfigurationError", "LocalStackError"]
