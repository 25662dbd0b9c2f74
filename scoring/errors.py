"""Errors of the scoring package.

``ModelMismatchError`` is the one a deployment meets: a model trained on other
feature definitions (or another column order) than the live ones is refused
at load time, never allowed to score vectors it would silently misread.
"""

from __future__ import annotations

from schemas.errors import ChurnwatchError


class ScoringError(ChurnwatchError):
    """Base class of the scoring package's errors."""


class ModelMismatchError(ScoringError):
    """A model was built for other features than the live definitions.

    ``field`` is ``"feature_version"`` or ``"feature_names"``; ``expected`` is
    what the live definitions say, ``found`` what the model was trained on.
    """

    def __init__(self, directory: str, field: str, expected: object, found: object,
                 detail: str) -> None:
        self.directory = directory
        self.field = field
        self.expected = expected
        self.found = found
        super().__init__(f"model in {directory}: {field} mismatch: {detail}")


class ModelFileError(ScoringError):
    """A model directory is missing a file, or its files are unreadable or disagree."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


