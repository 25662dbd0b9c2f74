"""The snapshot protocol every piece of per-key state follows.

Bytewax recovery snapshots each key's state at the end of every epoch and
hands it back to a new instance after a restart; the backfill and tests do
the same with ``pickle``. So every state class (dedupe, feature buckets,
signal episodes, the scoring debounce, the inactivity tracker, risk tiers,
decisions, the account processor that holds several of them):

* ``snapshot()`` returns its whole state as a picklable value that later
  changes to the live object do not alter;
* its constructor takes that value back as its ``snapshot`` argument
  (``None``: a fresh state).

A state class held inside another one (dedupe, buckets and episodes inside
:class:`~accounts.processor.AccountProcessor`) also offers ``raw()`` and
``restore_raw(raw)``: the live structures themselves, for the owner to pickle
at once. That skips a copy that would be thrown away (measured: 20 us and
860 B per account instead of 47 us and 1,080 B), at the price that a raw
value must never be kept.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

S_co = TypeVar("S_co", covariant=True)
R = TypeVar("R")


class Snapshotting(Protocol[S_co]):
    """State that can be saved and restored (see the module docstring)."""

    def snapshot(self) -> S_co:
        """The whole state as a picklable value; later changes do not alter it."""
        ...


class PickledInPlace(Protocol[R]):
    """State whose owner pickles its live structures directly (see the module docstring)."""

    def raw(self) -> R:
        """The live state, to be pickled at once (never kept: it changes)."""
        ...

    def restore_raw(self, raw: R) -> None:
        """Take back what :meth:`raw` returned, after unpickling."""
        ...
