"""The account table's columns read and write as dicts keyed by subject would."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.account_table import AccountTable, BlobColumn, FloatColumn, IntColumn

SUBJECTS = st.sampled_from([f"acme:{name}" for name in "abcdefgh"])
# (column, operation, subject, value): set or pop, on each of the four columns
OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["state", "risk", "newest", "partition"]),
        st.sampled_from(["set", "pop"]),
        SUBJECTS,
        st.integers(min_value=-3, max_value=400),
    ),
    max_size=120,
)


def columns(table: AccountTable) -> dict[str, BlobColumn | FloatColumn | IntColumn]:
    return {"state": BlobColumn(table), "risk": BlobColumn(table),
            "newest": FloatColumn(table), "partition": IntColumn(table)}


def value_of(column: str, number: int) -> bytes | float | int:
    if column in ("state", "risk"):  # states of many sizes, empty among them
        return bytes([number % 251]) * max(0, number)
    return float(number) / 7 if column == "newest" else number


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_columns_behave_as_dicts_through_reuse_and_compaction(operations: list) -> None:
    table = AccountTable(compact_at=1)  # compact as soon as an eighth is replaced
    held = columns(table)
    expected: dict[str, dict[str, object]] = {name: {} for name in held}
    for column, operation, subject, number in operations:
        if operation == "set":
            value = value_of(column, number)
            held[column][subject] = value  # type: ignore[assignment]
            expected[column][subject] = value
        else:
            assert held[column].pop(subject) == expected[column].pop(subject, None)
        for name, column_held in held.items():
            assert len(column_held) == len(expected[name])
            assert dict(column_held.items()) == expected[name]
            for candidate in "abcdefgh":
                subject_ = f"acme:{candidate}"
                assert (subject_ in column_held) == (subject_ in expected[name])
                assert column_held.get(subject_) == expected[name].get(subject_)
        # a slot is held while any column holds a value for it, and only then
        assert len(table) == len(set().union(*(keys for keys in expected.values())))
        # the buffer holds the states, and bytes replaced that it counts
        states = sum(len(v) for name in ("state", "risk")
                     for v in expected[name].values())  # type: ignore[arg-type]
        assert len(table.data) - table.garbage == states


def test_a_freed_slot_is_reused_empty() -> None:
    table = AccountTable()
    held = columns(table)
    held["newest"]["acme:a"] = 1.5
    held["state"]["acme:a"] = b"state of a"
    held["newest"].pop("acme:a")
    assert len(table) == 1  # its state still holds it
    held["state"].pop("acme:a")
    assert len(table) == 0
    held["partition"]["acme:b"] = 3  # takes a's slot: nothing of a's shows through
    assert table.slot("acme:b") == 0
    assert held["state"].get("acme:b") is None and "acme:b" not in held["newest"]
    assert dict(held["partition"].items()) == {"acme:b": 3}


def test_scans_select_by_value_and_leave_the_absent_out() -> None:
    table = AccountTable()
    held = columns(table)
    newest, partition = held["newest"], held["partition"]
    for index, name in enumerate("abcd"):
        newest[f"acme:{name}"] = float(index * 10)
        partition[f"acme:{name}"] = index % 2
    partition["acme:e"] = 0  # no newest: a scan on newest does not select it
    assert math.isnan(newest.values()[table.slot("acme:e")])
    silent = (partition.values() == 0) & (newest.values() < 25.0)
    assert sorted(table.subjects(silent)) == ["acme:a", "acme:c"]
    assert sorted(table.subjects(np.isnan(newest.values()))) == ["acme:e"]


def test_a_state_no_longer_than_its_last_is_written_in_place() -> None:
    table = AccountTable(compact_at=10**9)
    state = columns(table)["state"]
    state["acme:a"] = b"x" * 100
    state["acme:b"] = b"y" * 100
    state["acme:a"] = b"z" * 60  # in place: the buffer does not grow
    assert len(table.data) == 200 and table.garbage == 40
    state["acme:a"] = b"w" * 80  # longer than 60: appended, the 60 replaced
    assert len(table.data) == 280 and table.garbage == 100
    table.compact()
    assert len(table.data) == 180 and table.garbage == 0
    assert state["acme:a"] == b"w" * 80 and state["acme:b"] == b"y" * 100


def test_a_state_taken_out_leaves_no_bytes_behind() -> None:
    table = AccountTable(compact_at=10**9)
    state = columns(table)["state"]
    state["acme:a"] = b"secret of a"
    state["acme:b"] = b"state of b"
    assert state.pop("acme:a") == b"secret of a"
    assert b"secret" not in table.data and state["acme:b"] == b"state of b"
