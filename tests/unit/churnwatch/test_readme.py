"""The README documents every setting and both front-door commands."""

from __future__ import annotations

from pathlib import Path

from churnwatch.settings import ENV_VARIABLES

README = (Path(__file__).parents[3] / "README.md").read_text()


def test_every_variable_is_documented() -> None:
    missing = [name for name in ENV_VARIABLES if f"`{name}`" not in README]
    assert missing == []


def test_front_door_commands_are_shown() -> None:
    assert "make demo" in README and "make test" in README
