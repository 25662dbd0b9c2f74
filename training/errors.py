"""Errors of the training package."""

from __future__ import annotations

from schemas.errors import ChurnwatchError


class TrainingError(ChurnwatchError):
    """The data cannot train a model (too few rows, or a single class in a split)."""

    def __init__(self, problem: str, *, rows: int, positives: int) -> None:
        self.problem = problem
        self.rows = rows
        self.positives = positives
        super().__init__(f"cannot train: {problem} (rows={rows}, positives={positives})")


class TrainingOptionError(ChurnwatchError):
    """A training option names what is not there (a feature, a bound, a target)."""

    def __init__(self, problem: str) -> None:
        self.problem = problem
        super().__init__(problem)
