"""The command line's exit codes: 0 done, 1 refused input, 2 bad usage or settings."""

from __future__ import annotations

from pathlib import Path

import pytest

import featurestore
from churnwatch.cli import main
from churnwatch.settings import DEFAULT_POLICY

DEFINITIONS = Path(featurestore.__file__).parent / "definitions" / "default.yaml"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CHURNWATCH_")]:
        monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        pytest.param(["features", "check", str(DEFINITIONS)], 0, id="features-check-ok"),
        pytest.param(["policy", "check", str(DEFAULT_POLICY)], 0, id="policy-check-ok"),
        pytest.param(["run"], 2, id="run-without-servers"),
        pytest.param(["erase", "--tenant", "acme", "--account", "a\nb"], 2, id="erase-bad-id"),
        pytest.param(["erase", "--tenant", "acme", "--account", "a"], 1,
                     id="erase-without-servers"),
    ],
)
def test_exit_codes(argv: list[str], code: int) -> None:
    assert main(argv) == code


def test_refused_files_exit_1(tmp_path: Path) -> None:
    bad_policy = tmp_path / "policy.yaml"
    bad_policy.write_text(
        DEFAULT_POLICY.read_text().replace("decide: start_workflow", "decide: shout", 1)
    )
    assert main(["policy", "check", str(bad_policy)]) == 1
    bad_definitions = tmp_path / "definitions.yaml"
    bad_definitions.write_text("features: {logins_7d: {events: [app.login], aggregation: sum}}")
    assert main(["features", "check", str(bad_definitions)]) == 1


def test_an_unknown_variable_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_SNAPSHOT_INTERVAL", "10")  # a typo of ..._SECONDS
    assert main(["features", "check", str(DEFINITIONS)]) == 2


def test_an_unknown_command_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["frobnicate"])
    assert stopped.value.code == 2


def test_an_interrupt_wrapped_by_the_engine_is_still_an_interrupt() -> None:
    from churnwatch.cli import interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as inner:
            raise RuntimeError("error calling next_batch") from inner
    except RuntimeError as wrapped:
        assert interrupted(wrapped)
    assert not interrupted(RuntimeError("a defect"))
    assert interrupted(KeyboardInterrupt())
