"""A real HTTP origin server on loopback that misbehaves on request: 404s, stalls, trickles, cut
connections, no Range support. Used to test downloads without any outside network."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    data: bytes = b""
    status: int = 200
    ranges: bool = True  # honour Range requests (206) and say Accept-Ranges: bytes
    cut_after: int | None = None  # close the connection after sending this many body bytes
    stall_after: int | None = None  # stop sending (but keep the connection) after this many bytes
    trickle: float | None = None  # send one byte every `trickle` seconds
    etag: str = '"v1"'
    hang: bool = False  # never answer at all (until the server stops)


@dataclass
class Seen:
    method: str
    path: str
    range: str | None


@dataclass
class Origin:
    port: int
    routes: dict[str, Route]
    seen: list[Seen] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def gets(self, path: str) -> list[Seen]:
        return [s for s in self.seen if s.path == path]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    origin: Origin

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        origin = self.origin
        path = self.path.split("?", 1)[0]
        rng = self.headers.get("Range")
        origin.seen.append(Seen("GET", path, rng))
        route = origin.routes.get(path)
        if route is not None and route.hang:
            origin.stopping.wait(30)
            return
        if route is None or route.status != 200:
            status = 404 if route is None else route.status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            return
        data, start = route.data, 0
        if rng and route.ranges and (self.headers.get("If-Range") in (None, route.etag)):
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if route.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", route.etag)
        self.send_header("Content-Length", str(len(data) - start))
        self.send_header("Connection", "close")
        self.end_headers()
        body = data[start:]
        limit = route.cut_after if route.cut_after is not None else route.stall_after
        if route.trickle is not None:
            for i in range(len(body)):
                if origin.stopping.wait(route.trickle):
                    return
                try:
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                except OSError:
                    return
            return
        try:
            self.wfile.write(body if limit is None else body[:limit])
            self.wfile.flush()
        except OSError:
            return
        if route.stall_after is not None:
            origin.stopping.wait(30)
        if route.cut_after is not None:
            self.close_connection = True


@contextmanager
def origin_server(routes: dict[str, Route]) -> Iterator[Origin]:
    """Serve `routes` on a free loopback port; stops (and frees stalled handlers) on exit."""
    origin = Origin(0, routes)
    handler = type("Handler", (_Handler,), {"origin": origin})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = False  # joined on exit, once `stopping` frees stalled handlers
    origin.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield origin
    finally:
        origin.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
