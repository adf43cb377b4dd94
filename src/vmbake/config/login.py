"""The keys that let someone log in to the finished image, shared by the `qemu` and `debian-bootstrap` builders.

The bootstrap builder writes them into the root filesystem; the `qemu` builder hands them to the Debian
installer through the `{{ .LoginPreseed }}` run-time placeholder (see vmbake.login). `validate_login()`
checks them before anything starts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmbake.config.fields import opt

# A login name useradd takes on Debian without --badname.
USER_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
KEY_TYPES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")
RESERVED_USERS = ("root", "daemon", "bin", "sys", "nobody", "sshd", "messagebus", "systemd-network")


@dataclass(frozen=True)
class LoginUser:
    """An unprivileged user of the image, as cloud images have one."""

    name: str = opt("", "Login name; an empty name is skipped (so a template can pass an empty variable)")
    groups: list[str] = opt(factory=list, doc="Supplementary groups (existing ones; 'sudo' comes with sudo)")
    ssh_authorized_keys: list[str] = opt(
        factory=list, doc="Public keys (OpenSSH lines) or paths of authorized_keys files"
    )
    sudo: bool = opt(True, "May run any command as root through sudo, without a password")


@dataclass(frozen=True)
class LoginConfig:
    """How the image lets someone in; with none of these set the build warns that nobody can log in."""

    root_password: str = opt(
        "",
        "Root's password: clear text (vmbake hashes it with yescrypt before it reaches the guest) or a "
        "crypt(3) hash ($y$..., $6$...); empty locks it",
        sensitive=True,
        vmbake=True,
    )
    root_ssh_keys: list[str] = opt(
        factory=list,
        doc="Public keys (OpenSSH lines) or paths of authorized_keys files that may log in as root, "
        "besides the build's key",
        vmbake=True,
    )
    users: list[LoginUser] = opt(
        factory=list,
        doc="Unprivileged users (name, groups, ssh_authorized_keys, sudo) made in the image",
        vmbake=True,
    )
    cloud_init: bool = opt(
        False,
        "Install cloud-init (NoCloud and ConfigDrive data sources), left clean to run on the first boot",
        vmbake=True,
    )


def active_users(config: LoginConfig) -> list[LoginUser]:
    return [u for u in config.users if u.name.strip()]


def gives_a_way_in(config: LoginConfig) -> bool:
    """Whether anybody can log in to the finished image (cloud-init counts: its seed brings the keys)."""
    return bool(
        config.root_password
        or any(k.strip() for k in config.root_ssh_keys)
        or active_users(config)
        or config.cloud_init
    )


def is_key_line(text: str) -> bool:
    """An OpenSSH public key line, possibly with options before the key type."""
    return any(part.startswith(KEY_TYPES) for part in text.split()[:4])


def validate_login(config: LoginConfig, report: Callable[[str, str, str], None]) -> None:
    """Problems with the login keys, reported as (key, message, hint)."""
    _check_keys(config.root_ssh_keys, "root_ssh_keys", report)
    seen: set[str] = set()
    for i, user in enumerate(config.users):
        name = user.name.strip()
        if not name:
            continue
        where = f"users[{i}]"
        if not USER_NAME.match(name):
            report(f"{where}.name", f"{name!r} is not a valid login name",
                   "use lower-case letters, digits, '_' and '-', starting with a letter; 32 at most")  # fmt: skip
        elif name in RESERVED_USERS:
            report(f"{where}.name", f"{name!r} is a system account", "choose another name for the user")
        if name in seen:
            report(f"{where}.name", f"user {name!r} appears twice", "give each user once")
        seen.add(name)
        for j, group in enumerate(user.groups):
            if not USER_NAME.match(group):
                report(f"{where}.groups[{j}]", f"{group!r} is not a valid group name", "")
        _check_keys(user.ssh_authorized_keys, f"{where}.ssh_authorized_keys", report)


def _check_keys(entries: list[str], key: str, report: Callable[[str, str, str], None]) -> None:
    for i, entry in enumerate(entries):
        text = entry.strip()
        if not text or is_key_line(text) or "{{" in text:
            continue
        path = Path(text).expanduser()
        if not path.is_file():
            report(f"{key}[{i}]", f"{text!r} is neither a public key line nor an existing file",
                   "give an OpenSSH public key line ('ssh-ed25519 AAAA... me@host') or the path of an authorized_keys "
                   "or .pub file")  # fmt: skip
