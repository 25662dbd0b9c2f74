"""Child processes of a benchmark: starting, probing and stopping them, reading their output.

Every child is started through :class:`ChildProcesses` with ``PR_SET_PDEATHSIG``,
so none outlives the benchmark, even one that is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import ctypes
import resource
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

STOP_GRACE_S = 30.0

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # in the child, between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class ChildProcesses:
    """Every process a benchmark starts, so that none outlives it."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], *, env: dict[str, str] | None, cwd: Path,
              stdout: Path, stderr: Path) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output appended to two log files."""
        with stdout.open("ab") as out, stderr.open("ab") as err:
            proc = subprocess.Popen(
                argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                preexec_fn=_die_with_parent,
            )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes], first: signal.Signals = signal.SIGINT,
             grace_s: float = STOP_GRACE_S) -> int | None:
        """``first`` to the process, then SIGTERM and SIGKILL to its whole tree."""
        import psutil

        if proc.poll() is None:
            proc.send_signal(first)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                tree = psutil.Process(proc.pid).children(recursive=True)
            except psutil.Error:
                tree = []
            if proc.poll() is None:
                tree.append(psutil.Process(proc.pid))
            if not tree:
                break
            for member in tree:
                with contextlib.suppress(psutil.Error):
                    member.send_signal(sig)
            psutil.wait_procs(tree, timeout=10)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        return proc.returncode

    def stop_all(self) -> None:
        """Stop every child still running (SIGTERM first: nothing is waited on any more)."""
        for proc in self._procs:
            if proc.poll() is None:
                self.stop(proc, signal.SIGTERM, grace_s=10)
        self._procs.clear()


def free_port_block(count: int) -> int:
    """A port p with p .. p+count-1 all free on loopback (the metrics ports of a cluster)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = int(sock.getsockname()[1])
        if base + count - 1 > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", port))
        except OSError:
            continue
        return base
    msg = f"no block of {count} free ports"
    raise RuntimeError(msg)


def http_status(port: int, path: str, timeout_s: float = 2.0) -> int | None:
    """Status of GET ``http://127.0.0.1:<port><path>``; None when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout_s) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def wait_until_ready(proc: subprocess.Popen[bytes], ports: Sequence[int], stderr: Path,
                     timeout_s: float = 180.0) -> float:
    """Seconds until ``/readyz`` answers 200 on every port; raises if ``proc`` exits first."""
    started = time.perf_counter()
    deadline = started + timeout_s
    while not all(http_status(p, "/readyz") == 200 for p in ports):
        if proc.poll() is not None:
            msg = f"churnwatch run exited with {proc.returncode}:\n{tail_text(stderr)}"
            raise RuntimeError(msg)
        if time.perf_counter() > deadline:
            msg = (f"/readyz not 200 on every process after {timeout_s:.0f} s:\n"
                   f"{tail_text(stderr)}")
            raise RuntimeError(msg)
        time.sleep(0.5)
    return time.perf_counter() - started


def wait_all(children: ChildProcesses, procs: Sequence[subprocess.Popen[bytes]],
             stderr: Sequence[Path], what: str) -> None:
    """Wait for every process of a group; the first that fails raises (with the end of
    its stderr) and the others are stopped."""
    try:
        for i, proc in enumerate(procs):
            code = proc.wait()
            if code != 0:
                msg = f"{what} process {i} exited with {code}:\n{tail_text(stderr[i])}"
                raise RuntimeError(msg)
    finally:
        for proc in procs:
            if proc.poll() is None:
                children.stop(proc, signal.SIGTERM, grace_s=5)


def tail_text(path: Path, lines: int = 15) -> str:
    """The last lines of a log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def parse_counts(line: str, prefix: str) -> dict[str, float]:
    """``name=value`` pairs after ``prefix`` (a child's summary line); non-numbers skipped."""
    counts: dict[str, float] = {}
    for item in line[len(prefix):].split():
        name, _, value = item.partition("=")
        with contextlib.suppress(ValueError):
            counts[name] = float(value)
    return counts


def children_cpu_s() -> float:
    """CPU seconds of every reaped child so far: the difference around a run is its cost."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
