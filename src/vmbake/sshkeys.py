"""SSH keys: the build's temporary key pair, and loading a user's private key for paramiko.

The temporary key lives only inside the build's private work directory (0700) with mode 0600, and goes
away with it. Its public half (an OpenSSH line) is what `{{ .SSHPublicKey }}` expands to, so a preseed
or cloud-init file can authorise it without a private key ever being committed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from vmbake.errors import VmbakeError

KEY_FILE_NAME = "vmbake_ssh_key"


@dataclass(frozen=True)
class KeyPair:
    private_path: Path
    public_line: str  # "ssh-ed25519 AAAA... vmbake"


def generate_key_pair(
    directory: Path, kind: str = "ed25519", bits: int = 0, comment: str = "vmbake"
) -> KeyPair:
    """Write a new private key (mode 0600) into `directory` and return its path and public line."""
    key: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    elif kind == "ecdsa":
        curves: dict[int, ec.EllipticCurve] = {0: ec.SECP256R1(), 256: ec.SECP256R1(), 384: ec.SECP384R1()}
        curves[521] = ec.SECP521R1()
        if bits not in curves:
            raise VmbakeError(
                f"temporary_key_pair_bits {bits} is not valid for ecdsa", hint="use 256, 384 or 521"
            )
        key = ec.generate_private_key(curves[bits])
    elif kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits or 4096)
    else:
        raise VmbakeError(f"unknown temporary key type {kind!r}", hint="use ed25519, ecdsa or rsa")
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    path = directory / KEY_FILE_NAME
    # Create with 0600 from the start: the key must never be readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    os.chmod(path, 0o600)
    return KeyPair(path, f"{public.decode()} {comment}")


def load_private_key(path: Path, passphrase: str = "") -> paramiko.PKey:
    """The private key in `path` (ed25519, ecdsa or rsa; OpenSSH or PEM), decrypted with `passphrase`."""
    if not path.is_file():
        raise VmbakeError(
            f"ssh_private_key_file {path} does not exist",
            hint="check the path; it is relative to the template",
        )
    try:
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)  # type: ignore[arg-type]
    except paramiko.PasswordRequiredException:
        raise VmbakeError(
            f"ssh_private_key_file {path} is encrypted", hint="give its passphrase in ssh_key_passphrase"
        ) from None
    except paramiko.SSHException as exc:
        text = str(exc)
        if passphrase and ("password" in text.lower() or "decrypt" in text.lower() or "bad" in text.lower()):
            raise VmbakeError(
                f"cannot decrypt ssh_private_key_file {path}: {text}", hint="check ssh_key_passphrase"
            ) from None
        raise VmbakeError(
            f"cannot read ssh_private_key_file {path}: {text}",
            hint="use an ed25519, ecdsa or rsa private key in OpenSSH or PEM format",
        ) from None
    except (ValueError, TypeError) as exc:
        if not passphrase and "password" in str(exc).lower():
            raise VmbakeError(
                f"ssh_private_key_file {path} is encrypted", hint="give its passphrase in ssh_key_passphrase"
            ) from None
        hint = "check ssh_key_passphrase" if passphrase else "use an ed25519, ecdsa or rsa private key"
        raise VmbakeError(f"cannot read ssh_private_key_file {path}: {exc}", hint=hint) from None


def public_line(key: paramiko.PKey, comment: str = "vmbake") -> str:
    """The OpenSSH authorized_keys line of `key`."""
    return f"{key.get_name()} {key.get_base64()} {comment}"
