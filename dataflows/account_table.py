"""A shard's per-account fields in columns, its accounts' states in one buffer.

A shard holds thousands to hundreds of thousands of accounts, most of them
cold: their state as packed bytes and a few figures (when each was last
active, its newest event, its input partition, when its risk state may go).
Held as one dict per field, each cold account cost about 600 B beside its
states: seven hash tables and a set, a float or datetime object per figure and
a bytes object per state. And those small objects, replaced at every event
among the short-lived ones of the events' processing, pinned CPython's
allocator's arenas (at 1M accounts, about 0.8 KB per account of memory freed
but held).

Here an account has a slot (one dict entry: its subject to a small integer),
each field is a column (an ``array`` of machine values, absent as NaN or a
sentinel) and the states lie in one ``bytearray``: a state replaced by one no
longer is overwritten in place, otherwise appended, and the buffer is
compacted once an eighth of it is bytes replaced (a quarter held 888 B of
buffer per account of 645 B of states in ``benchmarks.bench_shard_memory``, an
eighth 780 B). A slot is freed when no column holds a value for it, and taken
again by the next new account (the columns keep the length of the most slots
ever held).

Each column reads like a dict keyed by subject (``get``, ``[]``, ``pop``,
``in``, ``len``, ``keys``, ``items``), so the shard's code reads as it did;
``values()`` and ``present()`` give a column as NumPy arrays for the scans
over every account (eviction, a day close's silent accounts), and
:meth:`AccountTable.subjects` names the slots a mask selects.
"""

from __future__ import annotations

import math
from array import array
from typing import Any

import numpy as np

NAN = math.nan
NO_INT = -(2**63)  # an integer column's "absent"
COMPACT_AT = 64 * 1024  # bytes replaced before a compaction is considered at all


class AccountTable:
    """The slots of a shard's accounts, and the buffer its state columns share."""

    def __init__(self, compact_at: int = COMPACT_AT) -> None:
        self._compact_at = compact_at
        self._slots: dict[str, int] = {}
        self._subjects: list[str] = []  # by slot; "" where free
        self._free: list[int] = []
        self._uses = array("B")  # the columns holding a value, by slot
        self._columns: list[_Column] = []
        self._blobs: list[BlobColumn] = []
        self.data = bytearray()
        self.garbage = 0  # bytes of data no state points to

    def __len__(self) -> int:
        """Accounts with a value in any column."""
        return len(self._slots)

    def slot(self, subject: str) -> int:
        """The account's slot, or -1."""
        return self._slots.get(subject, -1)

    def claim(self, subject: str) -> int:
        """The account's slot, a new one if it has none."""
        slot = self._slots.get(subject)
        if slot is not None:
            return slot
        if self._free:
            slot = self._free.pop()
            self._subjects[slot] = subject
        else:
            slot = len(self._subjects)
            self._subjects.append(subject)
            self._uses.append(0)
            for column in self._columns:
                column.grow()
        self._slots[subject] = slot
        return slot

    def load(self, subjects: list[str]) -> None:
        """Slots for ``subjects``, in their order, in a table that holds none yet (a
        restore: one pass, not a claim per account and column). Each column's
        ``load`` then fills its values in the same order, and :meth:`loaded` frees
        the slots that no column filled."""
        if self._slots:
            msg = "a table is loaded only while empty"
            raise ValueError(msg)
        slots = dict(zip(subjects, range(len(subjects)), strict=True))
        if len(slots) != len(subjects):
            msg = "a subject named twice in a load"
            raise ValueError(msg)
        self._slots = slots
        self._subjects = list(subjects)
        self._free = []
        self._uses = array("B", bytes(len(subjects)))

    def _count_loaded(self, present: Any) -> None:
        """A loaded column holds a value in the slots ``present`` selects."""
        uses = np.frombuffer(self._uses, dtype=np.uint8)
        uses += present

    def loaded(self) -> None:
        """The end of a load: the slots no column holds a value for are free."""
        subjects, slots = self._subjects, self._slots
        unused = np.flatnonzero(np.frombuffer(self._uses, dtype=np.uint8) == 0).tolist()
        for slot in unused:
            del slots[subjects[slot]]
            subjects[slot] = ""
        self._free = unused[::-1]  # the lowest taken first, as claim pops from the end

    def use(self, slot: int) -> None:
        self._uses[slot] += 1

    def unuse(self, slot: int) -> None:
        """A column let go of the slot's value; the slot is freed with its last."""
        left = self._uses[slot] - 1
        self._uses[slot] = left
        if left == 0:
            del self._slots[self._subjects[slot]]
            self._subjects[slot] = ""
            self._free.append(slot)

    def subjects(self, mask: Any) -> list[str]:
        """The subjects of the slots ``mask`` (a boolean array by slot) selects."""
        subjects = self._subjects
        return [subjects[slot] for slot in np.flatnonzero(mask).tolist()]

    def replaced(self, length: int) -> None:
        """``length`` bytes of the buffer no longer hold a state: compact once an
        eighth of it is such."""
        self.garbage += length
        if self.garbage >= self._compact_at and self.garbage * 8 >= len(self.data):
            self.compact()

    def compact(self) -> None:
        """Copy the states into a new buffer, end to end, in slot order."""
        old = memoryview(self.data)
        data = bytearray()
        for column in self._blobs:
            offsets, lengths = column.offsets, column.lengths
            for slot, length in enumerate(lengths):
                if length > 0:
                    start = offsets[slot]
                    offsets[slot] = len(data)
                    data += old[start:start + length]
        old.release()
        self.data = data
        self.garbage = 0


class _Column:
    """What every column shares: its table, its count, and reading like a dict by
    subject (the subclass says whether a slot holds a value, gets it, and scans)."""

    def __init__(self, table: AccountTable) -> None:
        self._table = table
        self._count = 0
        table._columns.append(self)

    def grow(self) -> None:
        raise NotImplementedError

    def _holds(self, slot: int) -> bool:
        raise NotImplementedError

    def get(self, subject: str, default: Any = None) -> Any:
        raise NotImplementedError

    def present(self) -> Any:
        """A boolean array by slot: which hold a value."""
        raise NotImplementedError

    def __len__(self) -> int:
        return self._count

    def _loaded(self) -> None:
        """After a ``load``: count the values, and tell the table which slots hold one."""
        present = self.present()
        self._count = int(present.sum())
        self._table._count_loaded(present)

    def __contains__(self, subject: object) -> bool:
        slot = self._table._slots.get(subject)  # type: ignore[call-overload]
        return slot is not None and self._holds(slot)

    def __getitem__(self, subject: str) -> Any:
        value = self.get(subject)
        if value is None:
            raise KeyError(subject)
        return value

    def keys(self) -> list[str]:
        return self._table.subjects(self.present())

    def __iter__(self) -> Any:
        return iter(self.keys())


class NumberColumn(_Column):
    """A number per account, read like a dict; an ``array`` of machine values whose
    ``absent`` value marks an account without one (a subclass picks both)."""

    def __init__(self, table: AccountTable, typecode: str, absent: Any) -> None:
        self._absent = absent
        self._values: Any = array(typecode, [absent]) * len(table._subjects)
        super().__init__(table)

    def _missing(self, value: Any) -> bool:
        return bool(value != value or value == self._absent)  # NaN is not equal to itself

    def grow(self) -> None:
        self._values.append(self._absent)

    def _holds(self, slot: int) -> bool:
        return not self._missing(self._values[slot])

    def get(self, subject: str, default: Any = None) -> Any:
        slot = self._table._slots.get(subject)
        if slot is None:
            return default
        value = self._values[slot]
        return default if self._missing(value) else value

    def __setitem__(self, subject: str, value: Any) -> None:
        table = self._table
        slot = table.claim(subject)
        values = self._values
        if self._missing(values[slot]):
            self._count += 1
            table.use(slot)
        values[slot] = value

    def pop(self, subject: str, default: Any = None) -> Any:
        table = self._table
        slot = table._slots.get(subject)
        if slot is None:
            return default
        values = self._values
        value = values[slot]
        if self._missing(value):
            return default
        values[slot] = self._absent
        self._count -= 1
        table.unuse(slot)
        return value

    def load(self, values: list[Any]) -> None:
        """Every slot's value after :meth:`AccountTable.load`, in its order (None:
        absent)."""
        absent = self._absent
        self._values = array(self._values.typecode,
                             [absent if value is None else value for value in values])
        self._loaded()

    def values(self) -> Any:
        """The column as a NumPy array by slot (a copy; the absent value where none)."""
        return np.array(self._values)

    def present(self) -> Any:
        values = self.values()
        return (values == values) & (values != self._absent)

    def items(self) -> list[tuple[str, Any]]:
        values = self._values
        slots = self._table._slots
        return [(subject, values[slots[subject]]) for subject in self.keys()]


class FloatColumn(NumberColumn):
    """A float per account (NaN: none)."""

    def __init__(self, table: AccountTable) -> None:
        super().__init__(table, "d", NAN)


class IntColumn(NumberColumn):
    """An integer per account (:data:`NO_INT`: none)."""

    def __init__(self, table: AccountTable) -> None:
        super().__init__(table, "q", NO_INT)


class BlobColumn(_Column):
    """A state (bytes) per account, held in the table's buffer, read like a dict;
    ``get`` returns a copy."""

    def __init__(self, table: AccountTable) -> None:
        self.offsets = array("q", [0]) * len(table._subjects)
        self.lengths = array("q", [-1]) * len(table._subjects)  # -1: none
        super().__init__(table)
        table._blobs.append(self)

    def grow(self) -> None:
        self.offsets.append(0)
        self.lengths.append(-1)

    def _holds(self, slot: int) -> bool:
        return self.lengths[slot] >= 0

    def get(self, subject: str, default: bytes | None = None) -> bytes | None:
        slot = self._table._slots.get(subject)
        if slot is None:
            return default
        length = self.lengths[slot]
        if length < 0:
            return default
        start = self.offsets[slot]
        return bytes(self._table.data[start:start + length])

    def __setitem__(self, subject: str, value: bytes) -> None:
        table = self._table
        slot = table.claim(subject)
        old = self.lengths[slot]
        size = len(value)
        if old < 0:
            self._count += 1
            table.use(slot)
        elif size <= old:  # in place: what it leaves over is replaced bytes
            start = self.offsets[slot]
            table.data[start:start + size] = value
            self.lengths[slot] = size
            if size < old:
                table.replaced(old - size)
            return
        data = table.data
        self.offsets[slot] = len(data)
        self.lengths[slot] = size
        data += value
        if old > 0:
            table.replaced(old)

    def pop(self, subject: str, default: bytes | None = None) -> bytes | None:
        """The state, taken out; its bytes in the buffer are zeroed (an erased
        account's state lingers nowhere until the next compaction)."""
        table = self._table
        slot = table._slots.get(subject)
        if slot is None or self.lengths[slot] < 0:
            return default
        start, length = self.offsets[slot], self.lengths[slot]
        data = table.data
        value = bytes(data[start:start + length])
        data[start:start + length] = bytes(length)
        self.lengths[slot] = -1
        self._count -= 1
        table.unuse(slot)
        if length > 0:
            table.replaced(length)
        return value

    def load(self, values: list[bytes | None]) -> None:
        """Every slot's state after :meth:`AccountTable.load`, in its order (None:
        none), laid end to end after what the buffer holds."""
        data = self._table.data
        lengths = np.array([-1 if value is None else len(value) for value in values],
                           dtype=np.int64)
        sizes = np.maximum(lengths, 0)
        offsets = np.where(lengths >= 0, len(data) + np.cumsum(sizes) - sizes, 0)
        self.lengths = array("q", lengths.tobytes())
        self.offsets = array("q", offsets.tobytes())
        data += b"".join([value for value in values if value is not None])
        self._loaded()

    def present(self) -> Any:
        return np.frombuffer(self.lengths, dtype=np.int64) >= 0

    def items(self) -> list[tuple[str, bytes]]:
        return [(subject, self[subject]) for subject in self.keys()]
