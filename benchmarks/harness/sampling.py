"""Memory and CPU of processes over time: a churnwatch cluster, the servers, this process.

:class:`ClusterSampler` samples a running ``churnwatch run`` cluster from a thread
(its ``/metrics``, RSS and CPU per process, CPU of the servers). The functions
below it read this process and the servers around one in-process run, from
``/proc`` (Linux; None or nothing elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.harness.figures import Figures
from benchmarks.harness.prometheus import scrape, sum_buckets, sum_histograms, sum_stages

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's threads were runnable but not running (CPU contention).

    Summed over its threads: the second field of /proc/<pid>/task/<tid>/schedstat.
    """
    total = 0
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    return total / 1e9


class ClusterSampler:
    """Every ``interval`` s: /metrics of each process, RSS and CPU of the cluster and servers.

    Each sample is a dict with ``t`` (s since :meth:`start`), the cluster's
    ``messages``, ``latency`` buckets and ``stages`` seconds (a process that does
    not answer counts with its last scrape), and ``rss``, ``cpu`` and ``wait``
    by role (``process N``, ``cluster parent``).
    """

    def __init__(self, proc: subprocess.Popen[bytes], ports: list[int],
                 servers: dict[str, int], interval: float) -> None:
        import psutil

        self._psutil = psutil
        self._proc = proc
        self._ports = ports
        self._servers = servers
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-sampler", daemon=True)
        self._last: list[Figures | None] = [None] * len(ports)
        self._handles: dict[int, Any] = {}
        self.t0 = time.time()
        self.samples: list[Figures] = []

    def start(self) -> ClusterSampler:
        self.t0 = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.time()
            with contextlib.suppress(Exception):  # one lost sample is not worth a crash
                self.samples.append(self.sample())
            self._stop.wait(max(0.0, self._interval - (time.time() - started)))

    def _process(self, pid: int) -> Any:
        # One psutil handle per pid: its CPU times stay comparable from sample to sample.
        handle = self._handles.get(pid)
        if handle is None:
            handle = self._handles[pid] = self._psutil.Process(pid)
        return handle

    def _role(self, member: Any) -> str:
        if member.pid == self._proc.pid:
            return "cluster parent" if len(self._ports) > 1 else "process 0"
        try:
            argv = member.cmdline()
        except self._psutil.Error:
            return f"pid {member.pid}"
        if "--process-id" in argv:
            index = argv.index("--process-id") + 1
            if index < len(argv):
                return f"process {argv[index]}"
        return f"pid {member.pid}"

    def tree(self) -> dict[str, tuple[int, float, float]]:
        """role -> (RSS bytes, own CPU s, s runnable but waiting for a CPU) of the cluster."""
        psutil = self._psutil
        result: dict[str, tuple[int, float, float]] = {}
        try:
            parent = self._process(self._proc.pid)
            members = [parent, *parent.children(recursive=True)]
        except psutil.Error:
            return result
        for member in members:
            try:
                if member.pid not in self._handles:
                    self._handles[member.pid] = member
                with member.oneshot():
                    rss = member.memory_info().rss
                    cpu = member.cpu_times()
                result[self._role(member)] = (rss, cpu.user + cpu.system,
                                              runqueue_wait_s(member.pid))
            except psutil.Error:
                continue
        return result

    def server_cpu(self) -> dict[str, float]:
        """name -> CPU seconds of each server with its live and reaped children."""
        psutil = self._psutil
        result: dict[str, float] = {}
        for name, pid in self._servers.items():
            try:
                server = self._process(pid)
                members = [server, *server.children(recursive=True)]
            except psutil.Error:
                continue
            total = 0.0
            for member in members:
                with contextlib.suppress(psutil.Error):
                    cpu = member.cpu_times()
                    total += cpu.user + cpu.system + cpu.children_user + cpu.children_system
            result[name] = total
        return result

    def sample(self) -> Figures:
        t = time.time() - self.t0
        scraped = [scrape(port) for port in self._ports]
        for index, result in enumerate(scraped):
            if result is not None:
                self._last[index] = result
        known = [r for r in self._last if r is not None]
        tree = self.tree()
        return {
            "t": round(t, 3),
            "messages": sum(r["messages"] for r in known),
            "scraped": sum(r is not None for r in scraped),
            "latency": sum_buckets([r["latency"] for r in known]),
            "stages": sum_stages([r["stages"] for r in known]),
            "gc_pauses": sum_histograms([r.get("gc_pauses", []) for r in known]),
            "rss": {role: rss for role, (rss, _, _) in tree.items()},
            "cpu": {role: cpu for role, (_, cpu, _) in tree.items()},
            "wait": {role: wait for role, (_, _, wait) in tree.items()},
            "servers_cpu": self.server_cpu(),
            "bench_cpu": sum(os.times()[:2]),
        }


# --- this process, around an in-process run -------------------------------------------------


def own_status_kib(field: str) -> int | None:
    """A ``/proc/self/status`` figure in KiB (VmRSS, VmHWM), None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_own_peak_rss() -> bool:
    """Reset VmHWM to the current RSS, so the next peak is the pipeline's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _proc_cpu_seconds(pid: int, children: bool) -> tuple[float, int]:
    """(utime+stime [+cutime+cstime]) of ``pid`` in seconds, and its parent pid."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # fields from the 3rd (state) on
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / _CLK_TCK, int(fields[1])


def server_cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each server, with its (live and reaped) children.

    PostgreSQL serves each connection in a child of the postmaster: live ones are
    summed, finished ones are already in the postmaster's cutime/cstime.
    """
    result: dict[str, float] = {}
    for name, pid in pids.items():
        try:
            result[name] = _proc_cpu_seconds(pid, children=True)[0]
        except (OSError, ValueError, IndexError):
            continue
    wanted = set(pids.values())
    by_pid = {pid: name for name, pid in pids.items()}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            seconds, parent = _proc_cpu_seconds(int(entry.name), children=True)
            if parent in wanted:
                result[by_pid[parent]] = result.get(by_pid[parent], 0.0) + seconds
    return result
