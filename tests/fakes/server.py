"""A small threaded HTTP server on 127.0.0.1 for tests, fault injection and load tests.

Subclasses implement ``handle(request) -> Reply``. The base class records every request it
receives (path, headers, JSON body) and can be told to misbehave for the next N requests:
``fail_next("429" | "500" | "hang" | "close" | "invalid_json", count)``, or to answer with a
canned status and body via ``reply_next``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

FAULT_KINDS = frozenset({"429", "500", "hang", "close", "invalid_json"})


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it; header names are lower-cased."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any  # the parsed JSON body, or None
    raw_body: bytes
    fault: str | None = None  # the fault injected into this request, if any
    received_at: float = 0.0  # time.monotonic()


@dataclass
class Reply:
    """What the fake answers: a JSON (or raw bytes) body, or a stream of SSE ``data:`` events."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    events: Iterable[Any] | None = None  # each item JSON-encoded (str sent as is) into ``data: ...``
    event_delay_s: float = 0.0  # pause before each event, to imitate token latency


@dataclass
class _Fault:
    kind: str
    remaining: int
    path: str | None
    retry_after: str
    reply: Reply | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, fake: FakeServer, address: tuple[str, int]) -> None:
        self.fake = fake
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # a client that timed out or reset: expected in fault tests
            logger.debug("fake %s: client connection error: %r", type(self.fake).__name__, error)
            return
        logger.exception("fake %s: error while serving %s", type(self.fake).__name__, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' connection pools expect
    # Headers and body go out in separate writes; with Nagle and delayed ACK each request
    # would otherwise stall about 40 ms.
    disable_nagle_algorithm = True
    timeout = 10  # an idle keep-alive connection releases its thread after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.fake._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.fake._track(self.connection, add=False)

    def _serve(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake %s: " + format, self.server.fake.__class__.__name__, *args)


class FakeServer:
    """Base fake: start/stop (or use as a context manager), request log, fault queue."""

    hang_seconds = 30.0  # longer than any client timeout; interrupted by stop()

    def __init__(self, *, log_limit: int | None = 10_000) -> None:
        self._lock = threading.Lock()
        # Bounded so that a long load test does not keep every request body in memory.
        self._requests: deque[RecordedRequest] = deque(maxlen=log_limit)
        self.latency_s = 0.0  # added before every answer, to imitate a remote service
        self._faults: deque[_Fault] = deque()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve in a background thread."""
        if self._httpd is not None:
            raise RuntimeError("fake server already started")
        self._stopping.clear()
        self._httpd = _HTTPServer(self, ("127.0.0.1", 0))
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake hanging handlers and close open connections."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("fake server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- faults ----------------------------------------------------------------------------

    def fail_next(self, kind: str, count: int = 1, *, retry_after: float | str = 0, path: str | None = None) -> None:
        """Misbehave on the next ``count`` requests (whose path starts with ``path``, if given)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.append(_Fault(kind, count, path, str(retry_after)))

    def reply_next(
        self,
        status: int,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        count: int = 1,
        path: str | None = None,
    ) -> None:
        """Answer the next ``count`` matching requests with this status and body."""
        reply = Reply(status=status, body=body, headers=dict(headers or {}))
        with self._lock:
            self._faults.append(_Fault("reply", count, path, "0", reply))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def reset(self) -> None:
        """Forget the request log and pending faults (state kept by subclasses stays)."""
        with self._lock:
            self._faults.clear()
            self._requests.clear()

    # --- request log -----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests whose path equals ``path``, oldest first."""
        return [r for r in self.requests if r.path == path]

    # --- for subclasses --------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> Any:
        """The JSON body of an injected error; subclasses speak their provider's shape."""
        return {"error": {"code": str(status), "message": message}}

    def invalid_json_reply(self, request: RecordedRequest) -> Reply:
        return Reply(200, b'{"this is": not valid json', {"Content-Type": "application/json"})

    # --- internals -------------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _take_fault(self, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path is None or path.startswith(fault.path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _serve(self, handler: _Handler) -> None:
        request = _read_request(handler)
        fault = self._take_fault(request.path)
        if fault is not None:
            request = dataclasses.replace(request, fault=fault.kind)
        with self._lock:
            self._requests.append(request)
        if self.latency_s and self._stopping.wait(self.latency_s):
            return
        if fault is None:
            reply = self._route(request)
        elif fault.kind == "hang":
            self._stopping.wait(self.hang_seconds)
            handler.close_connection = True
            return
        elif fault.kind == "close":
            handler.close_connection = True
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)
            return
        else:
            reply = self._fault_reply(fault, request)
        try:
            self._write(handler, reply)
        except OSError:  # the client gave up (timeout) while we were answering
            handler.close_connection = True

    def _route(self, request: RecordedRequest) -> Reply:
        try:
            return self.handle(request)
        except Exception as exc:  # a bug in the fake must show up as a loud 500, not a hang
            logger.exception("fake %s failed on %s", type(self).__name__, request.path)
            return Reply(500, self.error_body(500, f"fake server error: {exc!r}"))

    def _fault_reply(self, fault: _Fault, request: RecordedRequest) -> Reply:
        if fault.kind == "429":
            body = self.error_body(429, "Rate limit exceeded (injected)")
            return Reply(429, body, {"Retry-After": fault.retry_after})
        if fault.kind == "500":
            return Reply(500, self.error_body(500, "Internal server error (injected)"))
        if fault.kind == "invalid_json":
            return self.invalid_json_reply(request)
        assert fault.reply is not None
        return fault.reply

    def _write(self, handler: _Handler, reply: Reply) -> None:
        if reply.events is not None:
            self._write_events(handler, reply)
            return
        payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        handler.send_response(reply.status)
        headers = {"Content-Type": "application/json", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()

    def _write_events(self, handler: _Handler, reply: Reply) -> None:
        handler.send_response(reply.status)
        headers = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", **reply.headers}
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for event in reply.events or ():
            if reply.event_delay_s and self._stopping.wait(reply.event_delay_s):
                break
            data = event if isinstance(event, str) else json.dumps(event)
            _write_chunk(handler, f"data: {data}\n\n".encode())
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()


def _write_chunk(handler: _Handler, data: bytes) -> None:
    handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    handler.wfile.flush()


def _read_request(handler: _Handler) -> RecordedRequest:
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    body: Any = None
    if raw:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
    parts = urlsplit(handler.path)
    return RecordedRequest(
        method=handler.command,
        path=parts.path,
        query=parse_qs(parts.query, keep_blank_values=True),
        headers={name.lower(): value for name, value in handler.headers.items()},
        body=body,
        raw_body=raw,
        received_at=time.monotonic(),
    )


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections to it are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
