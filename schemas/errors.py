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
