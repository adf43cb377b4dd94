"""A small RFB (VNC) client: just enough protocol to type keys into a VM's console.

It speaks RFB 3.3, 3.7 and 3.8, with security "None" or "VNC Authentication", and always asks for a
*shared* session, so a human can attach a viewer while vmbake types. (A viewer that asks for an
exclusive session still pushes every other client off, unless QEMU's -vnc has `share=ignore`.)
After the handshake it only sends KeyEvent messages; whatever the server sends is read and dropped,
which is also how a closed connection is noticed before the next key goes out.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from types import TracebackType

from vmbake.errors import VmbakeError

_HANDSHAKE_TIMEOUT = 10.0
_SEC_INVALID, _SEC_NONE, _SEC_VNC_AUTH = 0, 1, 2
_KEY_EVENT = 4
_SECURITY_NAMES = {0: "Invalid", 1: "None", 2: "VNC Authentication", 16: "Tight", 18: "TLS", 19: "VeNCrypt"}


class VncError(VmbakeError):
    """The VNC handshake failed: wrong protocol, refused security, bad password."""


class VncUnreachable(VncError):
    """Nothing answered on the VNC address (yet): the one failure worth retrying."""


class VncConnectionDropped(VncError):
    """The server closed the connection (QEMU exited, or another client took the display)."""

    def __init__(self, address: str, sent: int, cause: str) -> None:
        super().__init__(
            f"the VNC connection to {address} dropped after {sent} key events ({cause})",
            hint="check that QEMU is still running (see its log), and attach VNC viewers in shared mode",
        )
        self.sent = sent
        self.cause = cause


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """The 16-byte answer to a VNC Authentication challenge: DES-ECB with a bit-reversed key.

    The key is the password's first 8 bytes (NUL padded), each byte with its bits in reverse order,
    a quirk of the original VNC implementation that every server expects."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    raw = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw)
    # Triple DES with K1 = K2 = K3 is single DES, which cryptography no longer offers on its own.
    encryptor = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return encryptor.update(challenge) + encryptor.finalize()


class RfbClient:
    """A connected, initialised RFB session. Use `connect()`; close it (or use `with`) when done."""

    def __init__(self, sock: socket.socket, address: str) -> None:
        self._sock = sock
        self.address = address
        self.version = (3, 3)
        self.security = _SEC_INVALID
        self.width = 0
        self.height = 0
        self.desktop_name = ""
        self.sent = 0  # key events sent so far
        self._closed = False

    # -- set-up ------------------------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        host: str,
        port: int,
        *,
        password: str = "",
        timeout: float = _HANDSHAKE_TIMEOUT,
        max_minor: int = 8,
        shared: bool = True,
    ) -> RfbClient:
        """Connect and complete the handshake. Raises VncError (with a hint) on any failure.

        `max_minor` caps the protocol version (3 for RFB 3.3, 7 for 3.7); `shared=False` asks for an
        exclusive session, as some viewers do (vmbake itself always shares)."""
        address = f"{host}:{port}"
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise VncUnreachable(
                f"cannot connect to the VNC server at {address}: {exc.strerror or exc}",
                hint="check that QEMU is running with -vnc on that address (vnc_bind_address, vnc_port_min/max)",
            ) from exc
        client = cls(sock, address)
        try:
            client._handshake(password, timeout, max_minor, shared)
        except BaseException:
            client.close()
            raise
        return client

    def _handshake(self, password: str, timeout: float, max_minor: int, shared: bool) -> None:
        self._sock.settimeout(timeout)
        try:
            self._negotiate_version(max_minor)
            self.security = self._negotiate_security(password)
            self._sock.sendall(b"\x01" if shared else b"\x00")  # ClientInit
            self._read_server_init()
        except TimeoutError as exc:
            raise VncError(
                f"the VNC server at {self.address} did not answer the handshake within {timeout:.0f}s",
                hint="the port may belong to something other than this VM's QEMU",
            ) from exc
        except OSError as exc:
            raise VncError(f"the VNC handshake with {self.address} failed: {exc}") from exc
        self._sock.settimeout(timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _recv_exact(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self._sock.recv(count - len(data))
            if not chunk:
                raise VncError(
                    f"the VNC server at {self.address} closed the connection during the handshake",
                    hint="another client may hold an exclusive session, or QEMU exited",
                )
            data += chunk
        return bytes(data)

    def _read_reason(self) -> str:
        (length,) = struct.unpack("!I", self._recv_exact(4))
        return self._recv_exact(min(length, 4096)).decode("utf-8", errors="replace")

    def _negotiate_version(self, max_minor: int) -> None:
        banner = self._recv_exact(12)
        if not (banner.startswith(b"RFB ") and banner.endswith(b"\n") and banner[7:8] == b"."):
            raise VncError(
                f"{self.address} does not speak RFB (it sent {banner!r})", hint="is this a VNC port?"
            )
        try:
            major, minor = int(banner[4:7]), int(banner[8:11])
        except ValueError as exc:
            raise VncError(f"{self.address} sent a malformed RFB version {banner!r}") from exc
        if major != 3:
            raise VncError(
                f"the VNC server at {self.address} speaks RFB {major}.{minor}; vmbake speaks 3.3 to 3.8"
            )
        minor = min(minor, max_minor)
        self.version = (3, 8) if minor >= 8 else (3, 7) if minor == 7 else (3, 3)
        self._sock.sendall(b"RFB 003.%03d\n" % self.version[1])

    def _negotiate_security(self, password: str) -> int:
        if self.version == (3, 3):
            chosen = int(struct.unpack("!I", self._recv_exact(4))[0])
            if chosen == _SEC_INVALID:
                raise VncError(
                    f"the VNC server at {self.address} refused the connection: {self._read_reason()}"
                )
            if chosen not in (_SEC_NONE, _SEC_VNC_AUTH):
                raise VncError(f"the VNC server at {self.address} wants unsupported security type {chosen}")
        else:
            (count,) = self._recv_exact(1)
            if count == 0:
                raise VncError(
                    f"the VNC server at {self.address} refused the connection: {self._read_reason()}"
                )
            offered = list(self._recv_exact(count))
            chosen = self._choose_security(offered, password)
            self._sock.sendall(bytes([chosen]))
        if chosen == _SEC_VNC_AUTH:
            if not password:
                raise VncError(
                    f"the VNC server at {self.address} asks for a password",
                    hint="set vnc_use_password (vmbake then sets and uses a random password)",
                )
            challenge = self._recv_exact(16)
            self._sock.sendall(vnc_auth_response(password, challenge))
        if chosen == _SEC_VNC_AUTH or self.version == (3, 8):
            (result,) = struct.unpack("!I", self._recv_exact(4))
            if result != 0:
                reason = self._read_reason() if self.version == (3, 8) else "no reason given"
                raise VncError(
                    f"VNC authentication with {self.address} failed: {reason}",
                    hint="the VNC password set in QEMU and the one vmbake sends differ",
                )
        return chosen

    def _choose_security(self, offered: list[int], password: str) -> int:
        if password and _SEC_VNC_AUTH in offered:
            return _SEC_VNC_AUTH
        if _SEC_NONE in offered:
            return _SEC_NONE
        if _SEC_VNC_AUTH in offered:
            return _SEC_VNC_AUTH  # fails with a clear "asks for a password" error
        names = ", ".join(_SECURITY_NAMES.get(t, str(t)) for t in offered)
        raise VncError(
            f"the VNC server at {self.address} offers only security types vmbake does not speak: {names}",
            hint="vmbake speaks None and VNC Authentication; drop TLS/SASL from the -vnc option",
        )

    def _read_server_init(self) -> None:
        header = self._recv_exact(24)
        self.width, self.height = struct.unpack("!HH", header[:4])
        (name_length,) = struct.unpack("!I", header[20:24])
        # Read the whole name even when it is long, so no stray bytes are left in the stream.
        name = bytearray()
        while len(name) < name_length:
            name += self._recv_exact(min(65536, name_length - len(name)))
        self.desktop_name = name[:256].decode("utf-8", errors="replace")

    # -- typing ------------------------------------------------------------------------------------------
    def _check_open(self) -> None:
        """Drop anything the server sent; notice a closed connection before the next key."""
        while True:
            readable, _, _ = select.select([self._sock], [], [], 0)
            if not readable:
                return
            try:
                data = self._sock.recv(65536)
            except OSError as exc:
                raise VncConnectionDropped(self.address, self.sent, str(exc)) from exc
            if not data:
                raise VncConnectionDropped(self.address, self.sent, "the server closed it")

    def key_event(self, keysym: int, down: bool) -> None:
        """Send one KeyEvent. Raises VncConnectionDropped when the server has gone away."""
        if self._closed:
            raise VncConnectionDropped(self.address, self.sent, "the client was closed")
        self._check_open()
        try:
            self._sock.sendall(struct.pack("!BBxxI", _KEY_EVENT, 1 if down else 0, keysym))
        except OSError as exc:
            raise VncConnectionDropped(self.address, self.sent, exc.strerror or str(exc)) from exc
        self.sent += 1

    def settle(self, seconds: float) -> None:
        """Wait `seconds`, noticing at once when the server closes the connection meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_open()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            select.select([self._sock], [], [], min(left, 0.5))

    # -- teardown ----------------------------------------------------------------------------------------
    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._sock.close()
            except OSError:
                pass

    def __enter__(self) -> RfbClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
