"""The way in: password hashing, authorized keys, the installer's login preseed and the bootstrap hook.

Hashes are checked with real checkers: `openssl passwd -6` (an implementation of SHA-512 crypt that is not
libxcrypt) and libxcrypt's own crypt(), which is what the guest's PAM calls. The shipped templates' installer
preseed is fetched over HTTP from the real StepHTTPServer, as the installer would fetch it.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import subprocess
from pathlib import Path
from typing import Any, cast

import pytest

from tests.unit.test_shipped_templates import RELEASES, TEMPLATES, answers
from vmbake.bootstrap.rootfs import customize_script, packages
from vmbake.config.bootstrap import BootstrapConfig
from vmbake.config.login import LoginConfig, LoginUser
from vmbake.config.qemu import QemuConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.login import (
    BUILD_KEY_COMMENT,
    CLOUD_INIT_CFG_PATH,
    crypt,
    crypted,
    hash_password,
    preseed_fragment,
    read_keys,
)
from vmbake.state import BuildContext, Options
from vmbake.steps.bootstrap_rootfs import authorized_keys
from vmbake.steps.http_server import StepHTTPServer
from vmbake.template import load_template
from vmbake.ui import BuildUi, Ui

USER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIUserKeyUserKeyUserKeyUserKeyUserKey alice@laptop"
BUILD_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBuildKeyBuildKeyBuildKeyBuildKeyBuild vmbake"
PASSWORD = "correct horse 'battery' $staple"


def test_hash_is_yescrypt_and_checks_with_libcrypt() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$y$")
    assert crypt(PASSWORD, hashed) == hashed
    assert crypt(PASSWORD + "x", hashed) != hashed
    assert hash_password(PASSWORD) != hashed  # a fresh salt each time


def test_sha512_crypt_agrees_with_openssl() -> None:
    """An independent implementation: openssl's SHA-512 crypt of the same password and salt."""
    ours = crypt(PASSWORD, "$6$vmbakeSalt0123$")
    theirs = subprocess.run(["openssl", "passwd", "-6", "-salt", "vmbakeSalt0123", "-stdin"], input=PASSWORD,
                            capture_output=True, text=True, check=True, timeout=30).stdout.strip()  # fmt: skip
    assert ours == theirs


@pytest.mark.parametrize(
    "value",
    ["$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "$6$salt$hash", "!", "*"],
)
def test_existing_hashes_pass_through(value: str) -> None:
    assert crypted(value) == value


def test_empty_password_is_locked() -> None:
    assert crypted("") == "!"


def test_clear_text_is_hashed() -> None:
    assert crypted("hunter2").startswith("$y$")


def test_keys_from_lines_and_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys").write_text(f"# mine\n\n{USER_KEY}\nssh-rsa AAAAB3Nza other\n")
    got = read_keys([USER_KEY, "~/.ssh/authorized_keys", "", f"  {USER_KEY}  "])
    assert got == [USER_KEY, "ssh-rsa AAAAB3Nza other"]


def test_unreadable_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(VmbakeError, match=r"cannot read the authorized keys file .*nope\.pub"):
        read_keys([str(tmp_path / "nope.pub")])


def test_bootstrap_root_keys_mark_the_build_key() -> None:
    keys = authorized_keys(BootstrapConfig(root_ssh_keys=[USER_KEY]), BUILD_KEY)
    assert keys == [USER_KEY, " ".join([*BUILD_KEY.split()[:2], BUILD_KEY_COMMENT])]


def test_bootstrap_hook_makes_the_user_and_installs_cloud_init() -> None:
    config = BootstrapConfig(
        root_password=PASSWORD, users=[LoginUser(name="alice", groups=["adm"], ssh_authorized_keys=[USER_KEY])],
        cloud_init=True,
    )  # fmt: skip
    assert {"sudo", "cloud-init"} <= set(packages(config))
    script = customize_script(config, [USER_KEY])
    assert PASSWORD not in script
    hashed = re.search(r"usermod -p '(\$y\$[^']+)' root", script)
    assert hashed and crypt(PASSWORD, hashed.group(1)) == hashed.group(1)
    assert 'chroot "$root" useradd --create-home --shell /bin/bash --groups adm,sudo alice' in script
    assert f"printf '%s\\n' '{USER_KEY}' > \"$root\"/home/alice/.ssh/authorized_keys" in script
    assert "alice ALL=(ALL) NOPASSWD:ALL" in script
    assert f'"$root"{CLOUD_INIT_CFG_PATH}' in script and "datasource_list: [ NoCloud, ConfigDrive ]" in script
    assert 'rm -rf "$root"/var/lib/cloud/*' in script


def test_a_user_with_an_empty_name_is_skipped() -> None:
    config = BootstrapConfig(users=[LoginUser(name="", ssh_authorized_keys=[USER_KEY])])
    assert "useradd" not in customize_script(config, [BUILD_KEY]) and "sudo" not in packages(config)


def _ctx(config: QemuConfig, out: io.StringIO) -> BuildContext:
    ui = Ui(out=out, err=out, color=False)
    ctx = BuildContext("installer", "qemu", config, cast(Any, None), BuildUi(ui, "installer"), Options())
    ctx.state.ssh_public_key = BUILD_KEY
    return ctx


def _fetch_login_cfg(config: QemuConfig, out: io.StringIO) -> str:
    config = QemuConfig(**{**config.__dict__, "http_port_min": 0, "http_port_max": 0})
    ctx = _ctx(config, out)
    step = StepHTTPServer()
    step.run(ctx)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", ctx.state.http_port or 0, timeout=10)
        conn.request("GET", "/login.cfg")
        resp = conn.getresponse()
        body = resp.read().decode()
        conn.close()
        assert resp.status == 200
        return body
    finally:
        step.cleanup(ctx)


def _installer(release: str, variables: dict[str, str]) -> QemuConfig:
    (build,) = load_template(TEMPLATES / release, vars=variables, only=["installer"]).builds
    assert isinstance(build.config, QemuConfig)
    return build.config


@pytest.mark.parametrize("release", RELEASES)
def test_installer_preseed_gets_the_key_the_user_and_the_hash(release: str, tmp_path: Path) -> None:
    keys = tmp_path / "id.pub"
    keys.write_text(USER_KEY + "\n")
    keys_var = str(keys) if release == "buster" else json.dumps([str(keys)])  # JSON variables are strings
    out = io.StringIO()
    text = _fetch_login_cfg(
        _installer(release, {"ssh_authorized_keys": keys_var, "user": "alice", "root_password": PASSWORD}),
        out,
    )
    got = answers(text)
    hashed = got["d-i passwd/root-password-crypted"]
    assert hashed.startswith("$y$") and crypt(PASSWORD, hashed) == hashed
    assert PASSWORD not in text and PASSWORD not in out.getvalue()
    assert got["d-i passwd/make-user"] == "true"
    assert got["d-i passwd/username"] == "alice" and got["d-i passwd/user-fullname"] == "alice"
    assert got["d-i passwd/user-password-crypted"] == "!"
    late = got["d-i preseed/late_command"]
    build_line = " ".join([*BUILD_KEY.split()[:2], BUILD_KEY_COMMENT])
    assert f"printf '%s\\n' '{USER_KEY}' '{build_line}' > /target/root/.ssh/authorized_keys" in late
    assert f"printf '%s\\n' '{USER_KEY}' > /target/home/alice/.ssh/authorized_keys" in late
    assert "in-target usermod --append --groups sudo alice" in late
    assert "in-target apt-get install -y --no-install-recommends sudo" in late
    assert "cloud" not in late
    assert "no way in" not in out.getvalue()


def test_installer_preseed_without_login_warns_and_keeps_root_locked() -> None:
    out = io.StringIO()
    got = answers(_fetch_login_cfg(_installer("trixie", {}), out))
    assert got["d-i passwd/root-password-crypted"] == "!"
    assert got["d-i passwd/make-user"] == "false"
    assert got["d-i preseed/late_command"].count("/target/root/.ssh/authorized_keys") == 2  # the build's key
    warning = out.getvalue()
    assert "Warning: the image will have no way in" in warning and "ssh_authorized_keys" in warning


def test_installer_preseed_with_cloud_init() -> None:
    out = io.StringIO()
    late = answers(_fetch_login_cfg(_installer("forky", {"cloud_init": "true"}), out))[
        "d-i preseed/late_command"
    ]
    assert "apt-get install -y --no-install-recommends cloud-init" in late
    assert f"> /target{CLOUD_INIT_CFG_PATH}" in late
    assert "no way in" not in out.getvalue()  # the seed brings the way in


def test_installer_preseed_with_a_missing_key_file_fails_before_serving(tmp_path: Path) -> None:
    config = QemuConfig(
        root_ssh_keys=[str(tmp_path / "gone.pub")], http_content={"/l": "{{ .LoginPreseed }}"}
    )
    with pytest.raises(StepError, match=r"LoginPreseed .*gone\.pub"):
        _fetch_login_cfg(config, io.StringIO())


def test_fragment_is_plain_text_answers() -> None:
    text = preseed_fragment(LoginConfig(users=[LoginUser(name="bob")]), BUILD_KEY)
    for line in text.splitlines():
        assert line.startswith(("#", "d-i ", "  ")), line


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("build", ["installer", "bootstrap"])
def test_every_shipped_build_takes_the_login_variables(release: str, build: str, tmp_path: Path) -> None:
    keys = tmp_path / "id.pub"
    keys.write_text(USER_KEY + "\n")
    keys_var = str(keys) if release == "buster" else json.dumps([str(keys), USER_KEY])
    variables = {
        "ssh_authorized_keys": keys_var,
        "user": "alice",
        "root_password": PASSWORD,
        "cloud_init": "true",
    }
    (loaded,) = load_template(TEMPLATES / release, vars=variables, only=[build]).builds
    config = loaded.config
    assert isinstance(config, LoginConfig)
    assert config.root_password == PASSWORD and config.cloud_init is True
    assert str(keys) in config.root_ssh_keys
    (user,) = config.users
    assert (user.name, user.sudo, user.ssh_authorized_keys) == ("alice", True, config.root_ssh_keys)
    # Without the variables: no user, no keys, nothing set.
    (bare,) = load_template(TEMPLATES / release, only=[build]).builds
    assert isinstance(bare.config, LoginConfig)
    assert not bare.config.root_password and not bare.config.cloud_init
    assert [k for k in bare.config.root_ssh_keys if k] == [] and [
        u for u in bare.config.users if u.name
    ] == []


class _Stop(Exception):
    pass


@pytest.mark.parametrize(("login", "warned"), [({}, True), ({"root_ssh_keys": [USER_KEY]}, False)])
def test_bootstrap_build_warns_when_nobody_can_log_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, login: dict[str, Any], warned: bool
) -> None:
    """The warning comes before mmdebstrap starts; mmdebstrap is replaced by a stand-in that stops the step
    there (the real one needs root and minutes, and the warning is all this test is about)."""
    from vmbake.steps import bootstrap_rootfs

    def stop(*_args: object, **_kwargs: object) -> None:
        raise _Stop

    monkeypatch.setattr(bootstrap_rootfs, "make_rootfs", stop)
    out = io.StringIO()
    ui = Ui(out=out, err=out, color=False)
    config = BootstrapConfig(**login)
    ctx = BuildContext(
        "bootstrap", "debian-bootstrap", config, cast(Any, None), BuildUi(ui, "bootstrap"), Options()
    )
    ctx.state.work_dir = tmp_path
    ctx.state.ssh_public_key = BUILD_KEY
    with pytest.raises(_Stop):
        bootstrap_rootfs.StepBootstrapRootfs(config).run(ctx)
    text = out.getvalue()
    assert ("Warning: the image will have no way in" in text) == warned, text
    if warned:
        assert "-var 'ssh_authorized_keys=" in text and "root_password" in text and "cloud_init" in text
