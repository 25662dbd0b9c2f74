"""The on-call endpoints: ``/metrics``, ``/healthz`` and ``/readyz`` on one port.

``/healthz`` answers 200 while the process serves HTTP at all. ``/readyz``
answers 200 only if the broker, Redis and PostgreSQL answer and the dataflow's
input polled recently (its heartbeat), else 503 with what failed, as JSON.
Checks run at most once per ``cache_seconds`` so a tight probe loop cannot
load the servers. ``/metrics`` serves churnwatch's registry and the process
default registry (where Bytewax's Kafka consumer lag gauge lives).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

Check = Callable[[], None]  # raises (anything) when the dependency is not ready


class Readiness:
    """Named checks, cached for ``cache_seconds``."""

    def __init__(self, checks: Mapping[str, Check], cache_seconds: float = 2.0) -> None:
        self._checks = dict(checks)
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._at = 0.0
        self._result: dict[str, str] = {}

    def evaluate(self) -> dict[str, str]:
        """``{name: "ok" | reason}``.

        While one request runs the checks (each may wait up to its timeout for a
        dependency that does not answer), the others get the last result at once
        rather than queueing behind it (with probes every half second and three
        2-second timeouts, they would pile up during an outage).
        """
        if time.monotonic() - self._at < self._cache_seconds:
            return self._result
        if not self._lock.acquire(blocking=not self._result):
            return self._result  # being refreshed: the last verdict
        try:
            if time.monotonic() - self._at < self._cache_seconds:
                return self._result  # refreshed while this request waited for the lock
            result = {}
            for name, check in self._checks.items():
                try:
                    check()
                    result[name] = "ok"
                except Exception as exc:  # a check's failure is data, not a crash
                    result[name] = f"{type(exc).__name__}: {exc}"[:300]
            self._result, self._at = result, time.monotonic()
            return result
        finally:
            self._lock.release()


class OpsServer:
    """A small threaded HTTP server in a daemon thread."""

    def __init__(self, port: int, registry: CollectorRegistry, readiness: Readiness,
                 host: str = "0.0.0.0") -> None:
        self._registry = registry
        self._readiness = readiness
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    body = generate_latest(server._registry) + generate_latest(REGISTRY)
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path == "/healthz":
                    self._send(200, b'{"status":"ok"}', "application/json")
                elif path == "/readyz":
                    checks = server._readiness.evaluate()
                    ready = all(v == "ok" for v in checks.values())
                    body = orjson.dumps({"ready": ready, "checks": checks})
                    self._send(200 if ready else 503, body, "application/json")
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would flood the log

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: object, client_address: object) -> None:
                # A probe that gave up before the answer (a busy process): not an error
                # worth a traceback on stderr.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)  # type: ignore[arg-type]

        self._httpd = Server((host, port), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="churnwatch-ops", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("serving /metrics, /healthz, /readyz", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
