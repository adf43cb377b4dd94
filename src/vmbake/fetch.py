"""Downloads that can be trusted: a lock, a resumable `.part` file, a checksum, then an atomic rename.

`fetch_checked(url, dest, checksum)` is the building block for the ISO cache and for any other file taken
from the network (the Debian installer's kernel and initrd). `fetch_bytes(url)` reads small files (SUMS,
Release) into memory. Both accept http(s) URLs, file:// URLs and local paths.

A server that stops sending fails the download after `stall_timeout` seconds (no data at all, or less than
1 KiB over that time), so a build never hangs on the network. The timeout defaults to 30s and can be set
with the VMBAKE_DOWNLOAD_TIMEOUT environment variable (a duration such as 2m).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vmbake import __version__
from vmbake.checksums import Checksum, algorithm_for, hash_file, make_checksum
from vmbake.errors import BuildCancelled, VmbakeError
from vmbake.files import read_regular_bytes
from vmbake.locks import FileLock, wait_saying
from vmbake.ui import ProgressHandle
from vmbake.units import LONGEST_WAIT, format_size, parse_duration

# progress(description, total) -> a context manager yielding a ProgressHandle, as BuildUi.progress.
ProgressFactory = Callable[[str, float | None], contextlib.AbstractContextManager[ProgressHandle]]
Say = Callable[[str], None]

DEFAULT_STALL_TIMEOUT = 30.0
_MIN_BYTES_PER_WINDOW = 1024
_BLOCK = 1 << 20


class DownloadError(VmbakeError):
    """A download failed; `url` names what was tried."""

    def __init__(self, url: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.url = url


class ChecksumMismatch(DownloadError):
    pass


def stall_timeout() -> float:
    raw = os.environ.get("VMBAKE_DOWNLOAD_TIMEOUT", "")
    if raw:
        try:
            seconds = parse_duration(raw)
            if abs(seconds) > LONGEST_WAIT:
                raise ValueError("longer than a year")
            return max(0.05, seconds)
        except ValueError:
            raise VmbakeError(
                f"VMBAKE_DOWNLOAD_TIMEOUT={raw!r} is not a duration", hint="use for example 30s or 2m"
            )
    return DEFAULT_STALL_TIMEOUT


def is_remote(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme.lower() in ("http", "https")


def local_path(url: str) -> Path:
    """The file a local source names: a path or a file:// URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "file":
        return Path(
            urllib.parse.unquote(
                parts.netloc + parts.path if parts.netloc not in ("", "localhost") else parts.path
            )
        )
    return Path(url)


def url_problem(url: str) -> str | None:
    """What is wrong with a download URL, or None: checked at validate time, so that a URL urllib would
    choke on (a bad port, an unclosed IPv6 bracket) never reaches a build."""
    try:
        if not is_remote(url):
            return None
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in 0-65535
    except ValueError as exc:
        return f"invalid URL: {exc}"
    if not parts.hostname:
        return "the URL has no host name"
    if any(c.isspace() or ord(c) < 32 for c in url):
        return "the URL contains spaces or control characters (write them %-encoded)"
    return None


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """`url` without user:password@, and the Basic Authorization header they stand for (go-getter's
    way). urllib would otherwise hand "user:password@host" to the resolver as a host name."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    user = urllib.parse.unquote(parts.username or "")
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class _Deadline:
    """Closes a connection whose server has not sent the whole status line and headers in time.

    A socket timeout alone bounds each read, so a server trickling one header byte a second would keep
    a download waiting for ever; this bounds the whole wait for the headers."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.sock: socket.socket | None = None
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def handlers(self) -> list[urllib.request.BaseHandler]:
        deadline = self

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(deadline._connection(http.client.HTTPConnection), req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req: urllib.request.Request) -> Any:
                return self.do_open(deadline._connection(http.client.HTTPSConnection), req)

        return [Http(), Https()]

    def _connection(self, base: type[http.client.HTTPConnection]) -> Any:
        deadline = self

        def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
            conn = base(host, **kwargs)
            connect = conn.connect

            def connect_and_note() -> None:
                connect()
                deadline.sock = conn.sock

            conn.connect = connect_and_note  # type: ignore[method-assign]
            return conn

        return make

    def __enter__(self) -> _Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()


def _open(
    url: str, headers: dict[str, str], timeout: float, *, method: str = "GET", body: bytes | None = None
) -> Any:
    plain_url, auth = _split_credentials(url)
    request = urllib.request.Request(
        plain_url,
        data=body,
        method=method,
        headers={"User-Agent": f"vmbake/{__version__}", **auth, **headers},
    )
    deadline = _Deadline(timeout)
    opener = urllib.request.build_opener(*deadline.handlers())
    try:
        with deadline:
            response = opener.open(request, timeout=timeout)
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        raise _open_error(url, exc, timeout, deadline.expired) from None
    if deadline.expired:  # the connection was cut mid-headers: what arrived is no answer
        response.close()
        raise _open_error(url, TimeoutError(), timeout, expired=True)
    return response


def _open_error(url: str, exc: BaseException, timeout: float, expired: bool) -> DownloadError:
    """One DownloadError for each way opening a URL fails."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if expired:
        return DownloadError(
            url, f"{url}: no complete answer (status and headers) within {timeout:g}s", hint=_STALL_HINT
        )
    if isinstance(reason, http.client.HTTPException):
        return DownloadError(
            url,
            f"{url}: the server's answer is not valid HTTP ({_http_fault(reason)})",
            hint="check that the URL names an HTTP server, and the port its HTTP port",
        )
    if isinstance(reason, TimeoutError):
        return DownloadError(url, f"{url}: no answer within {timeout:g}s", hint=_STALL_HINT)
    text = reason.strerror if isinstance(reason, OSError) and reason.strerror else str(reason)
    return DownloadError(url, f"{url}: {text}", hint="check the URL and the network")


def _http_fault(exc: http.client.HTTPException) -> str:
    """A short reason for a malformed response, never the raw bytes the server sent."""
    if isinstance(exc, http.client.LineTooLong):
        return "a line of the header is too long"
    if isinstance(exc, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(exc, http.client.BadStatusLine):
        return "no HTTP status line"
    if isinstance(exc, http.client.IncompleteRead):
        return "the body ended early or its chunks are malformed"
    return "too many header lines" if "headers" in str(exc) else type(exc).__name__


_STALL_HINT = "the server stalled; try again, use another mirror, or raise VMBAKE_DOWNLOAD_TIMEOUT"


def _http_error(url: str, exc: urllib.error.HTTPError) -> DownloadError:
    exc.close()
    hint = "check the URL (the file may have moved to an archive)" if exc.code == 404 else None
    return DownloadError(url, f"{url}: HTTP {exc.code} {exc.reason}", hint=hint)


def fetch_bytes(url: str, *, max_bytes: int = 16 << 20, timeout: float | None = None) -> bytes:
    """A small file's content (a SUMS or Release file), from http(s), file:// or a local path."""
    if not is_remote(url):
        path = local_path(url)
        try:
            return read_regular_bytes(path, "file", limit=max_bytes)
        except VmbakeError as exc:
            raise DownloadError(url, exc.message, hint=exc.hint) from None
    timeout = timeout or stall_timeout()
    try:
        resp = _open(url, {}, timeout)
    except urllib.error.HTTPError as exc:
        raise _http_error(url, exc) from None
    data = bytearray()
    with resp:
        _copy(url, resp, lambda b: data.extend(b), timeout, None, limit=max_bytes)
    return bytes(data)


def fetch_response(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    max_bytes: int = 16 << 20,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """An http(s) request's status, response headers (repeats kept) and body, with the downloads' stall
    timeout."""
    timeout = stall_timeout()
    try:
        resp = _open(url, headers or {}, timeout, method=method, body=body)
    except urllib.error.HTTPError as exc:
        raise _http_error(url, exc) from None
    data = bytearray()
    with resp:
        _copy(url, resp, lambda b: data.extend(b), timeout, None, limit=max_bytes)
        return resp.status, list(resp.headers.items()), bytes(data)


def _copy(
    url: str,
    resp: Any,
    sink: Callable[[bytes], object],
    timeout: float,
    cancel: threading.Event | None,
    *,
    limit: int | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> int:
    """Copy a response body to `sink`; fail when the server stalls (see the module docstring)."""
    total = 0
    window_start = time.monotonic()
    window_bytes = 0
    while True:
        try:
            block = resp.read1(_BLOCK)
        except http.client.HTTPException as exc:
            raise DownloadError(url, f"{url}: the body of the server's answer is malformed ({_http_fault(exc)})",
                                hint="try again or use another mirror")  # fmt: skip
        except TimeoutError:
            raise DownloadError(url, f"{url}: no data received for {timeout:g}s", hint=_STALL_HINT)
        except OSError as exc:
            raise DownloadError(
                url, f"{url}: connection failed: {exc}", hint="try again or use another mirror"
            )
        if not block:
            return total
        sink(block)
        total += len(block)
        window_bytes += len(block)
        if on_bytes is not None:
            on_bytes(len(block))
        if limit is not None and total > limit:
            raise DownloadError(url, f"{url} is larger than {format_size(limit)}")
        if cancel is not None and cancel.is_set():
            raise BuildCancelled()
        now = time.monotonic()
        if now - window_start >= timeout:
            if window_bytes < _MIN_BYTES_PER_WINDOW:
                raise DownloadError(url, f"{url}: less than 1 KiB received in {timeout:g}s", hint=_STALL_HINT)
            window_start, window_bytes = now, 0


def _meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _remove_part(part: Path) -> None:
    for p in (part, _meta_path(part)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _validator(resp: Any) -> str:
    etag = resp.headers.get("ETag") or ""
    if etag and not etag.startswith("W/"):
        return str(etag)
    return str(resp.headers.get("Last-Modified") or "")


def download_to_part(
    url: str,
    part: Path,
    *,
    algorithm: str | None,
    progress: ProgressFactory | None = None,
    say: Say | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> str | None:
    """Download `url` into `part`, resuming a previous `.part` when the server allows; the hex digest of
    the whole file with `algorithm` (None without). A failed download keeps a resumable part, else none."""
    timeout = timeout or stall_timeout()
    offset = part.stat().st_size if part.exists() else 0
    headers: dict[str, str] = {}
    meta: dict[str, str] = {}
    if offset:
        with contextlib.suppress(OSError, ValueError):
            meta = json.loads(_meta_path(part).read_text())
        headers["Range"] = f"bytes={offset}-"
        if meta.get("url") == url and meta.get("validator"):
            headers["If-Range"] = meta["validator"]
    try:
        resp = _open(url, headers, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            size = (exc.headers.get("Content-Range") or "").rpartition("/")[2]
            if size.isdigit() and int(size) == offset:  # the part was already complete
                with contextlib.suppress(FileNotFoundError):
                    _meta_path(part).unlink()
                return hash_file(part, algorithm) if algorithm else None
            _remove_part(part)
            return download_to_part(
                url, part, algorithm=algorithm, progress=progress, say=say, cancel=cancel, timeout=timeout
            )
        raise _http_error(url, exc) from None
    with resp:
        resuming = offset > 0 and resp.status == 206 and _range_start(resp) == offset
        if offset and not resuming:
            if say is not None:
                say(f"Server cannot resume {url}; starting the download again")
            offset = 0
        elif resuming and say is not None:
            say(f"Resuming download at {format_size(offset)}")
        resumable = resuming or resp.headers.get("Accept-Ranges", "").lower() == "bytes"
        length = resp.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        _meta_path(part).write_text(json.dumps({"url": url, "validator": _validator(resp)}))
        hasher = hashlib.new(algorithm) if algorithm else None
        if hasher is not None and offset:
            with open(part, "rb") as done:
                for block in iter(lambda: done.read(1 << 20), b""):
                    hasher.update(block)
        ok = False
        try:
            with open(part, "r+b" if offset else "wb") as out:
                out.seek(offset)
                out.truncate()
                with _progress(progress, url_file_name(url), total) as bar:
                    bar.update(offset, total)

                    def sink(block: bytes) -> None:
                        out.write(block)
                        if hasher is not None:
                            hasher.update(block)

                    got = _copy(url, resp, sink, timeout, cancel, on_bytes=bar.advance)
                if total is not None and offset + got != total:
                    raise DownloadError(
                        url, f"{url}: connection closed after {format_size(offset + got)} of {format_size(total)}",
                        hint="run the build again: the download resumes where it stopped",
                    )  # fmt: skip
                out.flush()
                os.fsync(out.fileno())
            ok = True
        finally:
            if not ok and not resumable:
                _remove_part(part)
    with contextlib.suppress(FileNotFoundError):
        _meta_path(part).unlink()
    return hasher.hexdigest() if hasher is not None else None


def url_file_name(url: str) -> str:
    """The last path segment of a URL, for progress bars and SUMS look-ups."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or url


def _range_start(resp: Any) -> int | None:
    value = resp.headers.get("Content-Range") or ""  # "bytes 100-199/200"
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


@contextlib.contextmanager
def _progress(factory: ProgressFactory | None, name: str, total: float | None) -> Any:
    if factory is None:
        yield _NoProgress()
        return
    with factory(name, total) as bar:
        yield bar


class _NoProgress:
    def advance(self, amount: float) -> None:
        pass

    def update(self, completed: float, total: float | None = None) -> None:
        pass


def verify_file(
    path: Path,
    checksum: Checksum,
    *,
    progress: ProgressFactory | None = None,
    cancel: threading.Event | None = None,
    label: str = "",
) -> str:
    """The digest of `path` with checksum's algorithm (showing progress); compare with `checksum.matches`."""
    size = path.stat().st_size
    with _progress(progress, f"Checking {label or path.name}", size) as bar:
        return hash_file(path, checksum.algorithm, on_progress=bar.advance, cancel=cancel)


def mismatch(url: str, checksum: Checksum, found: str, removed: Path | None) -> ChecksumMismatch:
    where = f"; removed {removed}" if removed is not None else ""
    return ChecksumMismatch(
        url,
        f"checksum mismatch for {url}: expected {checksum}, found {checksum.algorithm}:{found}{where}",
        hint="check iso_checksum; if it is right, the file is corrupt or was replaced on the server",
    )


def fetch_checked(
    url: str,
    dest: Path,
    checksum: Checksum | str | None,
    *,
    progress: ProgressFactory | None = None,
    say: Say | None = None,
    cancel: threading.Event | None = None,
    timeout: float | None = None,
) -> Path:
    """`dest`, downloaded from `url` and matching `checksum`, under a lock that other vmbake processes
    respect. An existing `dest` that matches is used as is; the file appears at `dest` only once checked.
    Without a checksum the file is always downloaded again (as Packer does). A string checksum is a bare
    hex digest (its length gives the type, so a sha256 from a Debian Release file fits) or "TYPE:HEX"."""
    if isinstance(checksum, str):
        try:
            checksum = (
                make_checksum(*checksum.split(":", 1))
                if ":" in checksum
                else make_checksum(algorithm_for(checksum), checksum)
            )
        except ValueError as exc:
            raise VmbakeError(f"bad checksum for {url}: {exc}") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(dest.with_name(dest.name + ".lock"), owner=f"downloading {url_file_name(url)}")
    wait_saying(lock, say, f"Another vmbake is fetching {dest.name}", cancel=cancel)
    try:
        if dest.exists() and checksum is not None:
            found = verify_file(dest, checksum, progress=progress, cancel=cancel, label=url_file_name(url))
            if checksum.matches(found):
                return dest
            if say is not None:
                say(f"Cached file {dest} does not match {checksum}; downloading it again")
            dest.unlink()
        part = dest.with_name(dest.name + ".part")
        digest = download_to_part(
            url, part, algorithm=checksum.algorithm if checksum else None, progress=progress, say=say,
            cancel=cancel, timeout=timeout,
        )  # fmt: skip
        if checksum is not None and digest is not None and not checksum.matches(digest):
            _remove_part(part)
            raise mismatch(url, checksum, digest, part)
        os.replace(part, dest)
        _fsync_dir(dest.parent)
        return dest
    finally:
        lock.release()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
