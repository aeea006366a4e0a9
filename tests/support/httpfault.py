"""A real loopback HTTP(S) server whose answers a test scripts, faults included.

Each path gets a handler `fn(exchange)`; the exchange knows how many requests that path has seen and
can answer like a well-behaved file server (`serve`, with Range/If-Range) or misbehave on purpose:
reset the connection mid-body, lie in Content-Length, send an endless or a dripping body, redirect.
Runs in a thread, so the code under test talks to it over real sockets.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    #: Header names in lower case.
    headers: dict[str, str]


class Exchange:
    """One request and the tools to answer it."""

    def __init__(self, handler: _Handler, index: int) -> None:
        self._h = handler
        self.path = handler.path.partition("?")[0]
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        #: How many requests this path had before this one.
        self.index = index

    @property
    def range_start(self) -> int | None:
        value = self.headers.get("range", "")
        if not value.startswith("bytes=") or not value.endswith("-"):
            return None
        start = value[len("bytes=") : -1]
        return int(start) if start.isdigit() else None

    def reply(
        self,
        status: int,
        body: bytes | Iterable[bytes] = b"",
        headers: dict[str, str] | None = None,
        *,
        content_length: int | bool | None = True,
        cut_after: int | None = None,
        reset: bool = False,
        drip: float | None = None,
        rate: float | None = None,
    ) -> None:
        """Send a response. `content_length`: True = the real length, an int = that (maybe a lie),
        None = none (the body ends when the connection closes). `cut_after` bytes then close (with an
        RST when `reset`); `drip` seconds between single bytes; `rate` bytes/s for the whole body."""
        h = self._h
        data = body if isinstance(body, bytes) else None
        lines = [f"HTTP/1.1 {status} {_PHRASES.get(status, 'Status')}"]
        all_headers = dict(headers or {})
        if content_length is True:
            assert data is not None, "give content_length for a streamed body"
            all_headers["Content-Length"] = str(len(data))
        elif isinstance(content_length, int) and not isinstance(content_length, bool):
            all_headers["Content-Length"] = str(content_length)
        close = content_length is None or cut_after is not None
        if close:
            all_headers["Connection"] = "close"
        lines += [f"{k}: {v}" for k, v in all_headers.items()]
        try:
            h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            sent = 0
            started = time.monotonic()
            for chunk in _chunks(body):
                if cut_after is not None and sent + len(chunk) >= cut_after:
                    h.wfile.write(chunk[: cut_after - sent])
                    h.wfile.flush()
                    self._close(reset=reset)
                    return
                if drip is not None:
                    for i in range(len(chunk)):
                        h.wfile.write(chunk[i : i + 1])
                        h.wfile.flush()
                        time.sleep(drip)
                else:
                    h.wfile.write(chunk)
                sent += len(chunk)
                if rate is not None:
                    ahead = sent / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            h.wfile.flush()
        except OSError:
            h.close_connection = True
            return
        if close:
            self._close(reset=False)

    def _close(self, *, reset: bool) -> None:
        h = self._h
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.wfile.flush()
            if reset:
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                h.connection.shutdown(socket.SHUT_WR)
            h.connection.close()

    def redirect(self, location: str, status: int = 302) -> None:
        self.reply(status, b"", {"Location": location})

    def serve(
        self,
        data: bytes,
        *,
        etag: str | None = '"v1"',
        last_modified: str | None = None,
        ranges: bool = True,
        cut_after: int | None = None,
        reset: bool = True,
        rate: float | None = None,
    ) -> None:
        """Answer like a correct file server: 206 for a Range whose If-Range still matches, else 200."""
        headers: dict[str, str] = {"Accept-Ranges": "bytes"} if ranges else {}
        if etag:
            headers["ETag"] = etag
        if last_modified:
            headers["Last-Modified"] = last_modified
        start = self.range_start
        if_range = self.headers.get("if-range")
        valid = if_range is None or if_range in (etag, last_modified)
        if ranges and start is not None and valid:
            if start >= len(data):
                self.reply(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
                return
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            self.reply(206, data[start:], headers, cut_after=cut_after, reset=reset, rate=rate)
            return
        self.reply(200, data, headers, cut_after=cut_after, reset=reset, rate=rate)


Handler = Callable[[Exchange], None]

_PHRASES = {
    200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 410: "Gone",
    416: "Range Not Satisfiable", 429: "Too Many Requests", 500: "Internal Server Error",
    502: "Bad Gateway", 503: "Service Unavailable",
}  # fmt: skip


def _chunks(body: bytes | Iterable[bytes]) -> Iterator[bytes]:
    if isinstance(body, bytes):
        view = memoryview(body)
        for i in range(0, len(body), 256 * 1024):
            yield bytes(view[i : i + 256 * 1024])
    else:
        yield from body


def endless(block: int = 64 * 1024) -> Iterator[bytes]:
    """A body that never ends."""
    chunk = b"\0" * block
    return itertools.repeat(chunk)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def do_GET(self) -> None:
        self.server.dispatch(self)

    def log_message(self, format: str, *args: object) -> None:
        return


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.routes: dict[str, Handler] = {}
        self.seen: list[Seen] = []
        self.active = 0
        self.peak = 0
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def dispatch(self, h: _Handler) -> None:
        path = h.path.partition("?")[0]
        with self._lock:
            index = sum(1 for s in self.seen if s.path == path)
            self.seen.append(Seen(h.command, path, {k.lower(): v for k, v in h.headers.items()}))
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            fn = self.routes.get(path)
            ex = Exchange(h, index)
            if fn is None:
                ex.reply(404, b"no such path")
            else:
                fn(ex)
        finally:
            with self._lock:
                self.active -= 1

    def handle_error(self, request: object, client_address: object) -> None:
        return  # clients that hang up or fail the TLS handshake are part of the tests


class FaultServer:
    """`with FaultServer() as srv: srv.add('/f', lambda ex: ex.serve(data)); srv.url('/f')`."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, host: str = "localhost") -> None:
        self._server = _Server(("127.0.0.1", 0), tls)
        self.host = host
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def add(self, path: str, fn: Handler) -> str:
        """Route `path` to `fn`; returns its URL."""
        self._server.routes[path] = fn
        return self.url(path)

    def url(self, path: str) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"

    @property
    def seen(self) -> list[Seen]:
        return list(self._server.seen)

    def requests(self, path: str) -> list[Seen]:
        return [s for s in self._server.seen if s.path == path]

    @property
    def peak(self) -> int:
        """Most requests in progress at once."""
        return self._server.peak
