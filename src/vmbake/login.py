"""The way in to a finished image: hashed passwords, authorized keys, users, and cloud-init.

Passwords are hashed on the host with libxcrypt (libcrypt.so.1, the library the guest's PAM checks them
with), so clear text never reaches the guest, its preseed or its disk. Python's `crypt` module is
deprecated since 3.11 and gone in 3.13, hence the direct binding. `preseed_fragment()` is the text of
`{{ .LoginPreseed }}` for the Debian installer; `user_commands()` makes a user, for the installer's
late_command and for the bootstrap builder's customize hook alike. They read `LoginConfig` keys only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import shlex
from pathlib import Path

from vmbake.config.login import LoginConfig, LoginUser, active_users, is_key_line
from vmbake.errors import VmbakeError

# A value that is already a crypt(3) hash, or a locked password ('!', '*'): passed through as it is.
CRYPT_HASH = re.compile(r"^(\$(y|gy|7|6|5|2[aby])\$[./0-9A-Za-z$=,]+|!.*|\*)$")
PREFIXES = (b"$y$", b"$6$")  # yescrypt (Debian's default since 11), then SHA-512 crypt
_CRYPT_DATA_SIZE = 1 << 16  # at least sizeof(struct crypt_data) (32 KiB + a little in libxcrypt)

# cloud-init: only the data sources a local VM gets (a NoCloud seed, an OpenStack config drive), and no
# network rendering: the image's own network setup (systemd-networkd or ifupdown) stays in charge.
CLOUD_INIT_CFG_PATH = "/etc/cloud/cloud.cfg.d/95_vmbake.cfg"
CLOUD_INIT_CFG = (
    "# Written by vmbake: look for a NoCloud seed (a disk labelled cidata) or a config drive, nothing else.\n"
    "datasource_list: [ NoCloud, ConfigDrive ]\n"
    "network:\n  config: disabled\n"
)
# The comment the build's temporary key carries in the image, so that provision.sh's clean_root_ssh can
# remove that line alone and leave the keys the user gave.
BUILD_KEY_COMMENT = "vmbake-build-key"
NO_WAY_IN = (
    "the image will have no way in: root's password is locked and the build's key is removed. Give it "
    "one: -var 'ssh_authorized_keys=[\"ssh-ed25519 AAAA...\"]' (or the path of a .pub file), "
    "-var root_password=..., -var user=NAME, or -var cloud_init=true and a NoCloud seed "
    "(builder keys: root_ssh_keys, root_password, users, cloud_init)"
)


@functools.cache
def _libcrypt() -> ctypes.CDLL:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    try:
        lib = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:
        raise VmbakeError(
            f"cannot load libcrypt to hash the password: {exc}",
            hint="install libcrypt1 (Debian), or give root_password as a hash from 'mkpasswd -m yescrypt'",
        ) from None
    lib.crypt_gensalt.restype = ctypes.c_char_p
    lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    lib.crypt_rn.restype = ctypes.c_char_p
    lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return lib


def crypt(password: str, setting: str) -> str:
    """crypt(3) of `password` with `setting` (a salt string, or a full hash to check against)."""
    lib = _libcrypt()
    data = ctypes.create_string_buffer(_CRYPT_DATA_SIZE)
    out = lib.crypt_rn(password.encode(), setting.encode(), data, _CRYPT_DATA_SIZE)
    if not out or out.startswith(b"*"):
        raise VmbakeError(
            f"libcrypt cannot hash with {setting[:4]!r}", hint="use a yescrypt or SHA-512 setting"
        )
    return bytes(out).decode()


def hash_password(password: str) -> str:
    """A yescrypt hash of `password` (SHA-512 crypt where libcrypt lacks yescrypt), with a random salt."""
    lib = _libcrypt()
    for prefix in PREFIXES:
        setting = lib.crypt_gensalt(prefix, 0, None, 0)  # no random bytes given: libcrypt reads the OS's
        if setting:
            return crypt(password, setting.decode())
    raise VmbakeError("libcrypt offers neither yescrypt nor SHA-512 crypt",
                      hint="give root_password as a hash made elsewhere ('openssl passwd -6')")  # fmt: skip


def crypted(value: str) -> str:
    """The hash the guest gets: an existing crypt hash as it is, clear text hashed, empty locked ('!')."""
    if not value:
        return "!"
    return value if CRYPT_HASH.match(value) else hash_password(value)


def read_keys(entries: list[str]) -> list[str]:
    """Public key lines from `entries`: each one a key line, or the path of an authorized_keys/.pub file."""
    keys: list[str] = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        if is_key_line(text):
            lines = [text]
        else:
            path = Path(text).expanduser()
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise VmbakeError(
                    f"cannot read the authorized keys file {text!r}: {exc.strerror or exc}",
                    hint="give an OpenSSH public key line or the path of a readable .pub file",
                ) from None
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#") and line not in keys:
                keys.append(line)
    return keys


def build_key_line(public_key: str) -> str:
    """The build's public key as the image holds it: its type and body, and BUILD_KEY_COMMENT."""
    fields = public_key.split()
    return " ".join([*fields[:2], BUILD_KEY_COMMENT]) if len(fields) >= 2 else public_key.strip()


def _printf(lines: list[str], target: str) -> str:
    return (
        f"printf '%s\\n' {' '.join(shlex.quote(x) for x in lines)} > {target}" if lines else f": > {target}"
    )


def user_commands(user: LoginUser, root: str, chroot: str, *, create: bool = True) -> list[str]:
    """Shell commands that make `user` in the system at `root` (or, without `create`, give an existing one
    its groups, keys and sudo rule); `root` is shell text put before absolute paths ('/target',
    '"$root"'), `chroot` the command that runs a command inside that system."""
    name = shlex.quote(user.name.strip())
    groups = ",".join([g for g in user.groups if g != "sudo"] + (["sudo"] if user.sudo else []))
    home = f"/home/{user.name.strip()}"
    cmds: list[str] = []
    if create:
        cmds.append(
            f"{chroot} useradd --create-home --shell /bin/bash{' --groups ' + groups if groups else ''} {name}"
        )
    elif groups:
        cmds.append(f"{chroot} usermod --append --groups {groups} {name}")
    keys = read_keys(user.ssh_authorized_keys)
    if keys:
        ssh_dir, keys_file = shlex.quote(home + "/.ssh"), shlex.quote(home + "/.ssh/authorized_keys")
        cmds += [
            f"mkdir -p {root}{ssh_dir}",
            f"chmod 700 {root}{ssh_dir}",
            _printf(keys, root + keys_file),
            f"chmod 600 {root}{keys_file}",
            f"{chroot} chown -R {name}:{name} {ssh_dir}",
        ]
    if user.sudo:
        # Cloud images' way: the user's password stays locked, so sudo must not ask for one.
        drop_in = root + shlex.quote(f"/etc/sudoers.d/90-vmbake-{user.name.strip()}")
        cmds += [f"echo {shlex.quote(user.name.strip() + ' ALL=(ALL) NOPASSWD:ALL')} > {drop_in}",
                 f"chmod 440 {drop_in}"]  # fmt: skip
    return cmds


def preseed_fragment(config: LoginConfig, build_key: str) -> str:
    """The installer's answers for the way in (the text of {{ .LoginPreseed }}).

    Root's password and the first user go through d-i's passwd/ questions; root's keys (the build's and
    the user's) and the user's keys and sudo rule are installed by the late_command, which this fragment
    owns: a preseed that includes it must not set preseed/late_command itself."""
    users = active_users(config)
    lines = [
        "#### Written by vmbake from the build's login keys (root_password, root_ssh_keys, users, cloud_init).",
        "d-i passwd/root-login boolean true",
        f"d-i passwd/root-password-crypted password {crypted(config.root_password)}",
    ]
    packages: list[str] = []
    if users:
        first = users[0]
        lines += [
            "d-i passwd/make-user boolean true",
            f"d-i passwd/user-fullname string {first.name.strip()}",
            f"d-i passwd/username string {first.name.strip()}",
            # Locked, as in cloud images: the user comes in with a key and sudo asks for no password.
            "d-i passwd/user-password-crypted password !",
        ]
        if any(u.sudo for u in users):
            packages.append("sudo")
    else:
        lines.append("d-i passwd/make-user boolean false")
    if config.cloud_init:
        packages.append("cloud-init")
    root_keys = read_keys(config.root_ssh_keys)
    if build_key.strip():
        root_keys.append(build_key_line(build_key))
    cmds: list[str] = []
    if packages:
        # Here rather than through pkgsel/include, which a template's own preseed may already set.
        cmds.append(f"in-target apt-get install -y --no-install-recommends {' '.join(packages)}")
    cmds += [
        "mkdir -p /target/root/.ssh",  # d-i's busybox has no install(1)
        "chmod 700 /target/root/.ssh",
        _printf(root_keys, "/target/root/.ssh/authorized_keys"),
        "chmod 600 /target/root/.ssh/authorized_keys",
    ]
    for i, user in enumerate(users):
        cmds += user_commands(user, "/target", "in-target", create=i > 0)  # d-i's user-setup makes the first
    if config.cloud_init:
        cmds += [f"mkdir -p /target{CLOUD_INIT_CFG_PATH.rsplit('/', 1)[0]}",
                 _printf(CLOUD_INIT_CFG.splitlines(), f"/target{CLOUD_INIT_CFG_PATH}")]  # fmt: skip
    lines.append("d-i preseed/late_command string " + "; \\\n  ".join(cmds))
    return "\n".join(lines) + "\n"
