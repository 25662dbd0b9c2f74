"""Refuse to test a compiled module older than its source (``churnwatch.native``):
Python would import the compiled copy and the tests would run the old code. Give
the children the tests start a SIGINT that stops them. And end the run with a
table of the fault scenarios (here, not beside them in ``tests/integration``: under
pytest-xdist the main process loads only this conftest, and prints the summary)."""

from __future__ import annotations

import signal
import textwrap
from collections.abc import Callable

import pytest

from churnwatch import native


def pytest_configure(config: pytest.Config) -> None:
    if outdated := native.stale():
        raise pytest.UsageError(native.STALE_ADVICE.format(modules=", ".join(outdated)))
    # A shell without job control starts a background job with SIGINT ignored, and an
    # ignored signal stays ignored across exec: every churnwatch the tests start would
    # then ignore the SIGINT that stops it (tests/integration/test_live_reload.py waited
    # 60 s and failed). With a handler here, children start with SIGINT at its default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# The report property that carries a fault scenario's figures to the table at the end of
# the run (a test's user properties reach the main process from pytest-xdist's workers).
FAULT_FIGURES = "fault_figures"


@pytest.fixture
def fault_report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Records a fault scenario's figures (once its checks have passed): ``make faults``
    and ``make test`` end with a table of every scenario."""

    def record(figures: str) -> None:
        request.node.user_properties.append((FAULT_FIGURES, figures))
        print(f"\n{figures}")

    return record


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """A table of every fault scenario that ran: its outcome and its figures."""
    rows = []
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if "faults" not in getattr(report, "keywords", {}) or report.when not in (
                "call", "setup"
            ):
                continue
            if report.when == "setup" and outcome == "passed":
                continue
            name = report.nodeid.split("::")[-1]
            figures = dict(report.user_properties).get(FAULT_FIGURES, "")
            if outcome == "skipped" and isinstance(report.longrepr, tuple):
                figures = str(report.longrepr[2])
            rows.append((name, outcome, figures))
    if not rows:
        return
    terminalreporter.section("fault scenarios")
    for name, outcome, figures in rows:
        terminalreporter.write_line(f"{outcome.upper():8} {name}")
        for line in textwrap.wrap(figures, 100):
            terminalreporter.write_line(f"         {line}")
