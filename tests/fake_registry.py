"""An in-process fake of the Confluent Schema Registry's REST API, for tests.

No registry server can be installed here (it is a JVM service, not on PyPI), so
the tests run the real ``confluent_kafka.schema_registry.SchemaRegistryClient``
against this: an ``http.server`` on loopback, in a thread, answering the
endpoints (paths, bodies and error codes as the client 2.16 sends and reads
them) that churnwatch's calls use:

* ``POST /subjects/{subject}/versions``: register; an identical schema (same
  type, equal JSON) already under the subject keeps its id and version; the
  same schema under another subject gets the same global id, as in the real
  registry; a schema incompatible with the subject's latest: 409.
* ``GET /schemas/ids/{id}``: ``{"schema", "schemaType"}`` (``schemaType``
  left out for AVRO, as the real registry does); unknown id: 404 / 40403.
* ``GET /subjects/{subject}/versions/latest``: unknown subject: 404 / 40401.
* ``POST /compatibility/subjects/{subject}/versions/latest``:
  ``{"is_compatible": bool, "messages": [...]}``; unknown subject: 404 / 40401.
* ``GET /subjects``: the subject names.

Compatibility here is NOT the registry's JSON Schema algorithm (which compares
the two schemas' structure under a compatibility level, BACKWARD by default).
The fake checks a simplified BACKWARD rule: the new schema must be of the same
type and (for JSON) require nothing the old one did not require, and keep every
property the old one declared with the same definition. That is stricter than
the real registry (which also allows, say, a raised maxLength), so a schema the
fake accepts, the real one would too for these contracts; it is enough to test
that churnwatch asks and acts on the answer.

Everything it saw is on the object (``requests``, ``authorizations``) so tests
can assert what was sent (it checks no credentials); :meth:`FakeSchemaRegistry.stop`
makes it refuse connections, as a registry that went down.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit


@dataclass
class _Version:
    schema_id: int
    version: int
    schema: str
    schema_type: str


@dataclass
class FakeSchemaRegistry:
    """Start with ``with FakeSchemaRegistry() as registry:``; ``registry.url`` for the client."""

    subjects: dict[str, list[_Version]] = field(default_factory=dict)
    schemas: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (type, text)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    authorizations: list[str | None] = field(default_factory=list)  # Authorization headers
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeSchemaRegistry:
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                registry._serve(self, "GET")

            def do_POST(self) -> None:
                registry._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:  # quiet tests
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # a short poll interval: shutdown() waits for the serving loop to notice
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True, name="fake-schema-registry")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Shut the server down: later requests are refused (a registry outage)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeSchemaRegistry:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- what tests call directly ------------------------------------------------

    def register(self, subject: str, schema: str, schema_type: str = "JSON") -> int:
        """Register as a producer would (e.g. an AVRO schema); returns the id."""
        with self._lock:
            status, body = self._register(subject, {"schema": schema, "schemaType": schema_type})
        assert status == 200, body
        return int(body["id"])

    def versions(self, subject: str) -> list[int]:
        return [v.version for v in self.subjects.get(subject, [])]

    # --- the REST API --------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        path = [unquote(p) for p in parts.path.strip("/").split("/")]
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        with self._lock:
            self.requests.append((method, parts.path))
            self.authorizations.append(handler.headers.get("Authorization"))
            status, answer = self._route(method, path, body)
        data = json.dumps(answer).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _route(self, method: str, path: list[str], body: Any) -> tuple[int, Any]:
        match method, path:
            case "GET", ["subjects"]:
                return 200, sorted(self.subjects)
            case "POST", ["subjects", subject, "versions"]:
                return self._register(subject, body)
            case "GET", ["subjects", subject, "versions", "latest"]:
                versions = self.subjects.get(subject)
                if not versions:
                    return _subject_not_found(subject)
                return 200, _version_document(subject, versions[-1])
            case "GET", ["schemas", "ids", raw_id] if raw_id.isdigit():
                found = self.schemas.get(int(raw_id))
                if found is None:
                    return 404, {"error_code": 40403, "message": f"Schema {raw_id} not found"}
                schema_type, text = found
                document = {"schema": text}
                if schema_type != "AVRO":
                    document["schemaType"] = schema_type
                return 200, document
            case "POST", ["compatibility", "subjects", subject, "versions", "latest"]:
                versions = self.subjects.get(subject)
                if not versions:
                    return _subject_not_found(subject)
                problems = _incompatibilities(versions[-1], body)
                return 200, {"is_compatible": not problems, "messages": problems}
        return 404, {"error_code": 404, "message": f"HTTP 404 Not Found: {method} {path}"}

    def _register(self, subject: str, body: dict[str, Any]) -> tuple[int, Any]:
        schema_type = str(body.get("schemaType") or "AVRO")
        text = str(body["schema"])
        versions = self.subjects.setdefault(subject, [])
        for version in versions:
            if _same(version, schema_type, text):
                return 200, {"id": version.schema_id}
        if versions:
            problems = _incompatibilities(versions[-1], body)
            if problems:
                return 409, {
                    "error_code": 409,
                    "message": "Schema being registered is incompatible with an earlier"
                    f" schema for subject \"{subject}\", details: {problems}",
                }
        schema_id = next(
            (i for i, (t, s) in self.schemas.items() if _same(_Version(i, 0, s, t), schema_type,
                                                             text)),
            None,
        )
        if schema_id is None:
            schema_id = len(self.schemas) + 1
            self.schemas[schema_id] = (schema_type, text)
        versions.append(_Version(schema_id, len(versions) + 1, text, schema_type))
        return 200, {"id": schema_id, "guid": str(uuid.uuid4())}


def _subject_not_found(subject: str) -> tuple[int, Any]:
    return 404, {"error_code": 40401, "message": f"Subject '{subject}' not found."}


def _version_document(subject: str, version: _Version) -> dict[str, Any]:
    document: dict[str, Any] = {
        "subject": subject, "version": version.version, "id": version.schema_id,
        "schema": version.schema,
    }
    if version.schema_type != "AVRO":
        document["schemaType"] = version.schema_type
    return document


def _same(version: _Version, schema_type: str, text: str) -> bool:
    if version.schema_type != schema_type:
        return False
    if schema_type != "JSON":
        return version.schema == text
    return bool(json.loads(version.schema) == json.loads(text))


def _incompatibilities(latest: _Version, body: dict[str, Any]) -> list[str]:
    """The simplified BACKWARD rule of the module docstring: why ``body`` may not follow
    ``latest`` (empty: compatible)."""
    schema_type = str(body.get("schemaType") or "AVRO")
    if schema_type != latest.schema_type:
        return [f"schema type {schema_type} cannot follow {latest.schema_type}"]
    if schema_type != "JSON":
        return [] if latest.schema == body["schema"] else ["the fake compares only JSON"]
    old, new = json.loads(latest.schema), json.loads(body["schema"])
    problems = [
        f"property {name!r} is required but was not before"
        for name in sorted(set(new.get("required", ())) - set(old.get("required", ())))
    ]
    old_properties, new_properties = old.get("properties", {}), new.get("properties", {})
    for name, definition in old_properties.items():
        if name not in new_properties:
            problems.append(f"property {name!r} was removed")
        elif new_properties[name] != definition:
            problems.append(f"property {name!r} changed")
    return problems
