"""Errors of the featurestore package."""

from __future__ import annotations

from schemas.errors import ChurnwatchError, DependencyUnavailable


class DefinitionError(ChurnwatchError):
    """A feature definitions file is invalid; ``path`` (and ``line``, when the problem
    was found in a file) says where."""

    def __init__(self, source: str, path: str, problem: str, line: int | None = None) -> None:
        self.source = source
        self.path = path
        self.problem = problem
        self.line = line
        where = f"line {line}: " if line is not None and path != f"line {line}" else ""
        super().__init__(f"{source}: {where}{path}: {problem}")


class FeatureVersionMismatch(ChurnwatchError):
    """A stored vector (or a model) was built from other feature definitions."""

    def __init__(self, subject: str, stored: str | None, expected: str) -> None:
        self.subject = subject
        self.stored = stored
        self.expected = expected
        super().__init__(
            f"{subject}: stored feature_version {stored!r} != live definitions {expected!r}"
        )


class FeatureStoreUnavailable(DependencyUnavailable):
    """Redis did not answer a feature write (transient: retried with back-off)."""

    def __init__(self, problem: str) -> None:
        super().__init__("redis", problem)
