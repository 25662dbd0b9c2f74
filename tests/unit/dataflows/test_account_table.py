"""The account table's columns read and write as dicts keyed by subject would."""

from __future__ import annotations

import math

import numpy as np
import pytest
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


NAMES = ("state", "risk", "newest", "partition")
# A restore's accounts: each subject's four values, any of them absent (None)
ENTRIES = st.dictionaries(
    SUBJECTS, st.tuples(*(st.none() | st.integers(min_value=0, max_value=400) for _ in NAMES)),
    max_size=8,
)


def held_values(table: AccountTable, held: dict[str, BlobColumn | FloatColumn | IntColumn]
                ) -> tuple[object, ...]:
    return (len(table), len(table.data) - table.garbage,
            *((len(column), dict(column.items())) for column in held.values()))


@settings(max_examples=200, deadline=None)
@given(ENTRIES, OPERATIONS)
def test_a_table_loaded_at_once_is_the_table_set_a_value_at_a_time(
    entries: dict[str, tuple[int | None, ...]], operations: list,
) -> None:
    loaded_table, built_table = AccountTable(compact_at=1), AccountTable(compact_at=1)
    loaded, built = columns(loaded_table), columns(built_table)
    loaded_table.load(list(entries))
    for index, name in enumerate(NAMES):
        loaded[name].load([None if values[index] is None else value_of(name, values[index])
                           for values in entries.values()])  # type: ignore[arg-type]
    loaded_table.loaded()
    for subject, values in entries.items():
        for name, number in zip(NAMES, values, strict=True):
            if number is not None:
                built[name][subject] = value_of(name, number)  # type: ignore[assignment]
    assert held_values(loaded_table, loaded) == held_values(built_table, built)
    # and it goes on alike: freed slots taken again, states replaced, compactions
    for column, operation, subject, number in operations:
        if operation == "set":
            loaded[column][subject] = value_of(column, number)  # type: ignore[assignment]
            built[column][subject] = value_of(column, number)  # type: ignore[assignment]
        else:
            assert loaded[column].pop(subject) == built[column].pop(subject)
        assert held_values(loaded_table, loaded) == held_values(built_table, built)


def test_a_load_is_refused_into_a_table_that_holds_accounts_or_naming_one_twice() -> None:
    table = AccountTable()
    state = columns(table)["state"]
    with pytest.raises(ValueError, match="twice"):
        table.load(["acme:a", "acme:a"])
    state["acme:b"] = b"b"
    with pytest.raises(ValueError, match="empty"):
        table.load(["acme:c"])
    assert dict(state.items()) == {"acme:b": b"b"} and len(table) == 1
