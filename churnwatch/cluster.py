"""``churnwatch run --processes N``: a Bytewax cluster of N local processes (and the
children of ``churnwatch replay --processes N``: :func:`run_children`).

Each child is ``churnwatch run --process-id i --addresses ...`` with the same
environment; Bytewax spreads the input partitions and the keyed state over
them (scale with processes, not threads: the GIL). The parent forwards
SIGINT/SIGTERM, stops every child if one fails, and with ``--until-drained``
prints the children's summed counts. For several hosts, start one
``churnwatch run --process-id i --addresses "h1:p;h2:p"`` per host instead.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

from churnwatch.localstack import free_port
from dataflows.run import recovery_config

DRAINED = "drained: "


def run_local_cluster(
    processes: int,
    workers_per_process: int,
    *,
    until_drained: bool,
    recovery_dir: Path | None,
    recovery_partitions: int,
    shards: int | None = None,
) -> int:
    # Create the recovery partitions here, once: children starting together
    # would race to create the same SQLite tables ("table parts already exists").
    recovery_config(recovery_dir, recovery_partitions, shards=shards)
    addresses = local_addresses(processes)
    argvs = [
        [sys.executable, "-m", "churnwatch", "run",
         "--process-id", str(process_id),
         "--addresses", addresses,
         "--workers-per-process", str(workers_per_process),
         *(["--until-drained"] if until_drained else [])]
        for process_id in range(processes)
    ]
    failed, totals = run_children(argvs)
    if until_drained and not failed:
        print(DRAINED + " ".join(f"{k}={v}" for k, v in totals.items()), flush=True)
    return failed


def local_addresses(processes: int) -> str:
    """Bytewax cluster addresses for ``processes`` processes on this host."""
    return ";".join(f"127.0.0.1:{free_port()}" for _ in range(processes))


def run_children(argvs: list[list[str]]) -> tuple[int, Counter[str]]:
    """Run one child process per argv, relaying their output with its process number;
    forward SIGINT/SIGTERM; stop them all if one fails. The exit code (0: all ended
    well) and the sum of the counts the children printed on a ``drained:`` line."""
    children = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        for argv in argvs
    ]

    totals: Counter[str] = Counter()
    lock = threading.Lock()

    def relay(process_id: int, child: subprocess.Popen[str]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            if line.startswith(DRAINED):
                with lock:
                    for item in line[len(DRAINED):].split():
                        name, _, value = item.partition("=")
                        totals[name] += int(value)
                line = f"process {process_id} {line}"
            sys.stdout.write(line)
            sys.stdout.flush()

    relays = [
        threading.Thread(target=relay, args=(i, child), daemon=True)
        for i, child in enumerate(children)
    ]
    for thread in relays:
        thread.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        failed = 0
        pending = list(children)
        while pending:
            for child in list(pending):
                try:
                    code = child.wait(timeout=0.2)
                except subprocess.TimeoutExpired:
                    continue
                pending.remove(child)
                if code != 0 and not failed:
                    failed = code
                    forward(signal.SIGTERM, None)  # one failed: the cluster cannot go on
        for thread in relays:
            thread.join(timeout=5)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return failed, totals
