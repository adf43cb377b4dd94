"""The HTTP server the guest fetches its preseed from: `http_directory` and `http_content`, read-only.

It listens on a socket the caller already bound (see vmbake.ports), on loopback unless told otherwise; the
guest still reaches it as 10.0.2.2 through QEMU's user networking. It serves nothing outside its directory:
no `..` segment (decoded or not), no symlink that resolves outside, no directory listing. Each request is
recorded in `requests` and passed to `on_request`, so the build output shows what the installer fetched.
"""

from __future__ import annotations

import contextlib
import logging
import mimetypes
import os
import shutil
import socket
import stat
import sys
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# A content value is either the text itself or a function giving it, called at request time so that
# run-time values (the temporary SSH key, the port) known only later in the build are filled in.
log = logging.getLogger(__name__)

Content = str | bytes | Callable[[], str | bytes]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    status: int


def printable(text: str, limit: int = 200) -> str:
    """`text` with control characters escaped, so a hostile request line cannot drive the terminal."""
    out = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return out if len(out) <= limit else out[:limit] + "..."


def normalize_content_path(key: str) -> str:
    return "/" + key.lstrip("/")


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # handler threads are joined by server_close()
    block_on_close = True

    def __init__(self, sock: socket.socket, owner: HttpServer) -> None:
        self.address_family = sock.family
        super().__init__(sock.getsockname()[:2], _Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.server_address = sock.getsockname()
        self.owner = owner

    def handle_error(self, request: object, client_address: object) -> None:
        # socketserver would print a traceback to stderr for a client that resets or half-closes
        # mid-request; that is the client's business, worth one line for whoever debugs.
        exc = sys.exc_info()[1]
        log.debug("http: connection from %s ended early: %r", client_address, exc)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 30  # a client that stalls mid-request frees its thread
    server_version = "vmbake"
    sys_version = ""

    def setup(self) -> None:
        super().setup()
        self.server.owner._track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._track(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: requests are reported through on_request

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        status, body, ctype, fd = owner.resolve(self.path)
        owner._record(self.command, self.path, status)  # before answering: the log never lags the client
        if fd is not None:
            self._send_file(fd, ctype, head)
            return
        data = body if body is not None else (HTTPStatus(status).phrase + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype if body is not None else "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _send_file(self, fd: int, ctype: str, head: bool) -> None:
        with open(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if not head:
                shutil.copyfileobj(f, self.wfile, 1 << 16)


class HttpServer:
    """Serve `directory` and `content` on `sock` in a background thread until `stop()`."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        directory: Path | None = None,
        content: Mapping[str, Content] | None = None,
        on_request: Callable[[Request], None] | None = None,
    ) -> None:
        self.directory = directory.resolve() if directory is not None else None
        self.content = {normalize_content_path(k): v for k, v in (content or {}).items()}
        self.on_request = on_request
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = _Server(sock, self)
        self.host: str = sock.getsockname()[0]
        self.port: int = int(sock.getsockname()[1])
        self._thread: threading.Thread | None = None

    def start(self) -> HttpServer:
        """Serve in a background thread. Calling it again while serving does nothing (a second serving
        thread would outlive `stop()`, and keep the interpreter from exiting)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.1},
                name=f"vmbake-http-{self.port}",
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and join every thread. Safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._server.shutdown()
            thread.join()
        with self._lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._server.server_close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- request handling (called from handler threads) -------------------------
    def _track(self, conn: socket.socket, alive: bool) -> None:
        with self._lock:
            if alive:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _record(self, method: str, raw_path: str, status: int) -> None:
        request = Request(method, printable(raw_path), status)
        with self._lock:
            self.requests.append(request)
        if self.on_request is not None:
            with contextlib.suppress(Exception):
                self.on_request(request)

    def resolve(self, raw_path: str) -> tuple[int, bytes | None, str, int | None]:
        """(status, body, content type, open file to send) for a request target. The caller owns the
        file descriptor."""
        if not raw_path.startswith("/"):
            return 400, None, "", None  # absolute-form or garbage: we are not a proxy
        path = urllib.parse.urlsplit(raw_path).path
        try:
            decoded = urllib.parse.unquote(path, errors="strict")
        except UnicodeDecodeError:
            return 400, None, "", None
        if "\x00" in decoded or "\\" in decoded:
            return 400, None, "", None
        segments = decoded.split("/")
        if any(seg == ".." for seg in segments):
            return 403, None, "", None
        key = "/" + "/".join(s for s in segments if s not in ("", "."))
        if key in self.content:
            value = self.content[key]
            if callable(value):
                try:
                    value = value()
                except Exception:
                    return 500, None, "", None
            body = value.encode() if isinstance(value, str) else value
            return 200, body, _content_type(key), None
        if self.directory is None:
            return 404, None, "", None
        target = self.directory.joinpath(*[s for s in segments if s not in ("", ".")])
        try:
            real = target.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError, RuntimeError, OSError):
            return 404, None, "", None
        if real != self.directory and self.directory not in real.parents:
            return 403, None, "", None  # a symlink leading out of the directory
        status, fd = _open_beneath(self.directory, real.relative_to(self.directory).parts)
        return status, None, _content_type(real.name), fd


def _open_beneath(root: Path, parts: tuple[str, ...]) -> tuple[int, int | None]:
    """(status, descriptor) of the regular file at `parts` under `root`, opened one component at a time
    with O_NOFOLLOW. `parts` is a path that resolve() found free of symlinks; if one has been swapped in
    since, the open itself refuses it, so checking and opening cannot be raced apart. A FIFO or device put
    there is refused without blocking (O_NONBLOCK)."""
    if not parts:
        return 403, None  # the directory itself: no listings
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fds: list[int] = []
    try:
        fds.append(os.open(root, flags | os.O_DIRECTORY))
        for part in parts[:-1]:
            fds.append(os.open(part, flags | os.O_DIRECTORY, dir_fd=fds[-1]))
        fd = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fds[-1])
    except (FileNotFoundError, NotADirectoryError):
        return 404, None
    except OSError:  # ELOOP (a symlink), EACCES, ...: refused
        return 403, None
    finally:
        for d in fds:
            os.close(d)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return 403, None  # a directory (no listings), a FIFO or a device
    os.set_blocking(fd, True)
    return 200, fd


def _content_type(name: str) -> str:
    if (
        name.endswith((".cfg", ".seed", ".preseed", ".sh", ".txt", ".pub"))
        or "." not in name.rsplit("/", 1)[-1]
    ):
        return "text/plain; charset=utf-8"
    guessed, _ = mimetypes.guess_type(name)
    return guessed or "application/octet-stream"
