"""shell, file and shell-local provisioners and StepProvision, against a real sshd on loopback."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.sshd import Sshd, home_of, make_ctx, running_sshd, throwaway_user
from vmbake.comm.ssh import SshCommunicator, SshTarget, connect
from vmbake.config.provisioners import FileConfig, ShellConfig, ShellLocalConfig
from vmbake.errors import StepError, VmbakeError
from vmbake.provisioners import flatten_env, quote_value
from vmbake.provisioners.file import download_target, upload_target
from vmbake.sshkeys import load_private_key
from vmbake.steps.provision import StepProvision
from vmbake.template.model import ProvisionerSpec

pytestmark = pytest.mark.host_tools("sshd", "ssh-keygen")

# Scripts with no remote_path go to the test user's home, not to Packer's default /tmp: a script_NNNN.sh left in
# the sticky /tmp by another user (of an earlier run on this machine) would make an upload of that name fail.
HOME: list[str] = []


@pytest.fixture(scope="module")
def sshd() -> Iterator[Sshd]:
    with throwaway_user() as (name, _password), running_sshd(name) as server:
        HOME[:] = [home_of(name)]
        yield server


@pytest.fixture
def remote() -> Iterator[str]:
    yield f"/tmp/vmbake-prov-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def build(sshd: Sshd, tmp_path: Path) -> Iterator[tuple[Any, Any, Any]]:
    ctx, out, err = make_ctx(tmp_path / "work")
    comm = connect(SshTarget("127.0.0.1", sshd.port, sshd.user, key=load_private_key(sshd.client_key)))
    ctx.state.comm = comm  # type: ignore[attr-defined]
    yield ctx, out, err
    comm.close()


def provision(ctx: Any, *specs: ProvisionerSpec) -> None:
    ctx.provisioners = list(specs)
    StepProvision().run(ctx)


def shell(*, timeout: float | None = None, **keys: Any) -> ProvisionerSpec:
    keys.setdefault("remote_folder", HOME[0])  # also where use_env_var_file puts its file
    return ProvisionerSpec("shell", ShellConfig(**keys), timeout=timeout)


def messages(out: Any) -> list[str]:
    return [line for _t, line in out.lines]


# -- pure rules ---------------------------------------------------------------------------------------------
def test_env_values_are_quoted_like_packer() -> None:
    assert quote_value("it's") == "it'\"'\"'s"
    assert flatten_env({"B": "x y", "A": "it's"}, "%s='%s' ") == "A='it'\"'\"'s' B='x y' "


def test_upload_slash_rules(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "f.txt").write_text("x")
    d, f = tmp_path / "dir", tmp_path / "f.txt"
    assert upload_target(f, str(f), "/tmp/") == ("/tmp/f.txt", False)
    assert upload_target(f, str(f), "/tmp/g.txt") == ("/tmp/g.txt", False)
    assert upload_target(d, f"{d}/", "/opt/x") == ("/opt/x", True)
    assert upload_target(d, str(d), "/opt/x") == ("/opt/x/dir", True)
    assert upload_target(d, str(d), "/opt/x/") == ("/opt/x/dir", True)


def test_download_slash_rules() -> None:
    assert download_target("/etc/hostname", "out/") == (Path("out/hostname"), Path("out"), False)
    assert download_target("/etc/hostname", "out/name") == (Path("out/name"), Path("out"), False)
    assert download_target("/etc/ssh/", "out/") == (Path("out"), Path("out"), True)
    assert download_target("/etc/ssh/", "keys") == (Path("keys"), Path("."), True)


def test_inline_shell_streams_output_with_packer_variables(build: Any) -> None:
    ctx, out, err = build
    ctx.state.http_port = 8123
    provision(
        ctx,
        shell(
            inline=['echo "$GREETING|$QUOTED|$PACKER_BUILD_NAME|$PACKER_HTTP_ADDR"', "echo warn >&2"],
            environment_vars=["GREETING=hello world", 'QUOTED=it\'s "quoted" $HOME'],
        ),
    )
    lines = messages(out)
    assert lines[0].startswith("==> qemu: Provisioning with shell script: ")
    assert '    qemu: hello world|it\'s "quoted" $HOME|qemu|10.0.2.2:8123' in lines
    assert messages(err) == ["==> qemu: warn"]


def test_pause_after_is_said_in_gos_form_and_waited(build: Any) -> None:
    ctx, out, _err = build
    started = time.monotonic()
    provision(ctx, shell(inline=["true"], pause_after=0.3))  # decoded from "300ms" when the template loads
    assert "==> qemu: Pausing 300ms after this provisioner..." in messages(out)
    assert time.monotonic() - started >= 0.3


def test_script_runs_at_remote_path_and_is_cleaned(build: Any, tmp_path: Path, remote: str) -> None:
    ctx, out, _err = build
    script = tmp_path / "provision.sh"
    script.write_bytes(b'#!/bin/sh\r\necho "I am $0"\r\n')  # CRLF becomes LF unless binary
    provision(ctx, shell(script=str(script), remote_path=f"{remote}.sh"))
    assert f"==> qemu: Provisioning with shell script: {script}" in messages(out)
    assert f"    qemu: I am {remote}.sh" in messages(out)
    status = ctx.state.comm.run(f"test -e {remote}.sh", on_stdout=print, on_stderr=print)
    assert status == 1  # removed after the run (skip_clean false)


def test_env_var_file_and_skip_clean(build: Any, remote: str) -> None:
    ctx, out, _err = build
    provision(
        ctx,
        shell(
            inline=['echo "v=$V"'],
            environment_vars=["V=a 'b' c"],
            use_env_var_file=True,
            remote_path=f"{remote}.sh",
            skip_clean=True,
        ),
    )
    assert "    qemu: v=a 'b' c" in messages(out)
    assert ctx.state.comm.run(f"rm {remote}.sh", on_stdout=print, on_stderr=print) == 0


def test_a_script_that_cannot_be_removed_is_a_warning(build: Any, remote: str) -> None:
    ctx, out, _err = build
    ctx.state.comm.mkdir_p(remote)
    # The script takes away its directory's write permission, so its own removal fails.
    provision(ctx, shell(inline=['chmod a-w "$(dirname "$0")"'], remote_path=f"{remote}/s.sh"))
    assert (
        f"==> qemu: Warning: could not remove {remote}/s.sh from the guest: cannot remove {remote}/s.sh: "
        "Permission denied" in messages(out)
    )
    assert ctx.state.comm.run(f"chmod u+w {remote} && rm -r {remote}", on_stdout=print, on_stderr=print) == 0


def test_exit_status_and_valid_exit_codes(build: Any) -> None:
    ctx, out, _err = build
    with pytest.raises(StepError, match=r"exited with status 3 \(allowed: 0\)"):
        provision(ctx, shell(inline=["exit 3"]))
    provision(ctx, shell(inline=["echo fine", "exit 3"], valid_exit_codes=[0, 3]))
    assert "    qemu: fine" in messages(out)


def test_expect_disconnect(build: Any, sshd: Sshd) -> None:
    ctx, out, _err = build
    stop = threading.Event()

    def kill_when_started() -> None:
        while not stop.is_set():
            if any("going down" in line for _t, line in out.lines):
                sshd.kill_sessions()
                return
            time.sleep(0.01)

    for expect in (False, True):
        killer = threading.Thread(target=kill_when_started)
        killer.start()
        try:
            if expect:
                provision(ctx, shell(inline=["echo going down", "sleep 20"], expect_disconnect=True))
            else:
                with pytest.raises(StepError, match="connection dropped"):
                    provision(ctx, shell(inline=["echo going down", "sleep 20"]))
        finally:
            stop.set()
            killer.join()
            stop.clear()
        out.lines.clear()


def test_output_is_streamed_before_the_script_ends(build: Any) -> None:
    ctx, out, _err = build
    started = time.monotonic()
    provision(ctx, shell(inline=["echo one", "sleep 0.6", "echo two"]))
    stamps = {line: t for t, line in out.lines}
    assert stamps["    qemu: one"] - started < stamps["    qemu: two"] - started - 0.4


# -- file ---------------------------------------------------------------------------------------------------
def test_file_upload_and_download_follow_slash_rules(build: Any, tmp_path: Path, remote: str) -> None:
    ctx, out, _err = build
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("B")
    single = tmp_path / "single.txt"
    single.write_text("S")
    provision(
        ctx,
        ProvisionerSpec("file", FileConfig(source=str(single), destination=f"{remote}/files/")),
        ProvisionerSpec("file", FileConfig(source=str(src), destination=f"{remote}/with")),
        ProvisionerSpec("file", FileConfig(source=f"{src}/", destination=f"{remote}/contents")),
    )
    assert f"==> qemu: Uploading {single} => {remote}/files/" in messages(out)
    found: list[str] = []
    ctx.state.comm.run(f"cd {remote} && find . -type f | sort", on_stdout=found.append, on_stderr=print)
    assert found == [
        "./contents/a.txt", "./contents/sub/b.txt", "./files/single.txt", "./with/src/a.txt", "./with/src/sub/b.txt",
    ]  # fmt: skip
    back = tmp_path / "back"
    provision(
        ctx,
        ProvisionerSpec("file", FileConfig(source=f"{remote}/files/single.txt", destination=f"{back}/", direction="download")),
        ProvisionerSpec("file", FileConfig(source=f"{remote}/with/", destination=f"{back}/tree", direction="download")),
    )  # fmt: skip
    assert (back / "single.txt").read_text() == "S"
    assert (back / "tree" / "src" / "sub" / "b.txt").read_text() == "B"
    assert f"==> qemu: Downloading {remote}/with/ => {back}/tree" in messages(out)
    ctx.state.comm.run(f"rm -rf {remote}", on_stdout=print, on_stderr=print)


def test_several_sources_need_a_directory_destination(build: Any, tmp_path: Path) -> None:
    ctx, _out, _err = build
    (tmp_path / "a").write_text("a")
    with pytest.raises(StepError, match="destination must be a directory"):
        provision(
            ctx, ProvisionerSpec("file", FileConfig(sources=[str(tmp_path / "a")] * 2, destination="/tmp/x"))
        )


# -- shell-local, common keys ---------------------------------------------------------------------------------
def test_shell_local_runs_on_the_host_with_variables(tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(tmp_path / "work")
    provision(ctx, ProvisionerSpec("shell-local", ShellLocalConfig(inline=['echo "$X on $PACKER_BUILDER_TYPE"'],
                                                                   environment_vars=["X=it's local"])))  # fmt: skip
    assert "    qemu: it's local on qemu" in messages(out)
    with pytest.raises(StepError, match="exited with status 4"):
        provision(ctx, ProvisionerSpec("shell-local", ShellLocalConfig(command="exit 4")))


def test_retries_and_error_cleanup(tmp_path: Path) -> None:
    ctx, out, _err = make_ctx(tmp_path / "work")
    counter = tmp_path / "count"
    flaky = ShellLocalConfig(command=f"echo x >> {counter}; test $(wc -l < {counter}) -ge 2")
    provision(ctx, ProvisionerSpec("shell-local", flaky, max_retries=2))
    assert counter.read_text() == "x\nx\n"
    ctx.error_cleanup_provisioner = ProvisionerSpec("shell-local", ShellLocalConfig(command="echo cleaning"))
    with pytest.raises(StepError):
        provision(ctx, ProvisionerSpec("shell-local", ShellLocalConfig(command="false")))
    assert "    qemu: cleaning" in messages(out)


def test_timeout_stops_a_provisioner(build: Any) -> None:
    ctx, _out, _err = build
    started = time.monotonic()
    with pytest.raises(StepError, match="did not finish within"):
        provision(ctx, shell(inline=["sleep 10"], timeout=0.5))
    assert time.monotonic() - started < 5


def test_no_communicator_is_a_clear_error(tmp_path: Path) -> None:
    ctx, _out, _err = make_ctx(tmp_path / "work")
    # Not `shell()`: its remote_folder is the sshd fixture's user's home, and this test starts no sshd.
    with pytest.raises(StepError, match="needs a connection to the guest"):
        provision(ctx, ProvisionerSpec("shell", ShellConfig(inline=["true"])))


def test_comm_type(build: Any) -> None:
    assert isinstance(build[0].state.comm, SshCommunicator)
    with pytest.raises(VmbakeError, match="not KEY=VALUE"):
        provision(build[0], shell(inline=["true"], environment_vars=["NOEQUALS"]))


def test_clear_authorized_keys_removes_only_the_temporary_key(build: Any, sshd: Sshd) -> None:
    from vmbake.sshkeys import KEY_FILE_NAME

    ctx, out, _err = build
    home = Path("/home") / sshd.user
    (home / ".ssh").mkdir(exist_ok=True)
    keys = home / ".ssh" / "authorized_keys"
    keys.write_text("ssh-ed25519 AAAAother+/key= keep-me\nssh-ed25519 AAAAtemp+/key= vmbake-qemu\n")
    keys.chmod(0o666)
    ctx.state.ssh_public_key = "ssh-ed25519 AAAAtemp+/key= vmbake-qemu"
    ctx.state.ssh_private_key_path = ctx.state.work_dir / KEY_FILE_NAME
    ctx.config = type(ctx.config)(ssh_clear_authorized_keys=True)
    provision(ctx)
    assert keys.read_text() == "ssh-ed25519 AAAAother+/key= keep-me\n"
    assert "==> qemu: Trying to remove ephemeral keys from authorized_keys files" in messages(out)


def test_throwaway_user_takes_its_files_in_tmp_with_it() -> None:
    # A script left in /tmp by one test's user once made a later test's upload of the same random name fail
    # (the sticky /tmp keeps others from replacing it).
    left = Path(f"/tmp/script_left_{uuid.uuid4().hex[:8]}.sh")
    with throwaway_user() as (name, _password):
        left.write_text("true\n")
        shutil.chown(left, name)
    assert not left.exists()


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "t.pkr.hcl",
            'source "null" "n" {\n  communicator = "none"\n}\nbuild {\n  name = "b"\n  sources = ["source.null.n"]\n'
            '  provisioner "shell-local" {\n    environment_vars = ["RUN=${build.PackerRunUUID}"]\n'
            '    inline = ["echo ${build.name} at ${build.User}@${build.Host}:${build.Port} $RUN ${build.ConnType}"]\n'
            "  }\n}\n",
        ),
        (
            "t.json",
            '{"builders": [{"type": "null", "name": "b", "communicator": "none"}], "provisioners": [{"type":'
            ' "shell-local", "environment_vars": ["RUN={{ build `PackerRunUUID` }}"], "inline": ["echo {{build_name}}'
            ' at {{ build `User` }}@{{build `Host`}}:{{ build `Port` }} $RUN {{ build `ConnType` }}"]}]}',
        ),
    ],
)
def test_build_values_are_filled_in_when_the_provisioner_runs(tmp_path: Path, name: str, text: str) -> None:
    from vmbake.placeholders import RUN_UUID
    from vmbake.template import load_template

    (tmp_path / name).write_text(text)
    spec = load_template(tmp_path / name).builds[0].provisioners[0]
    assert "{{ build `Host` }}" in spec.config.inline[0].replace("{{build `Host`}}", "{{ build `Host` }}")
    ctx, out, _err = make_ctx(tmp_path / "work", ssh_username="deb", ssh_host="10.0.2.9")
    ctx.state.ssh_host_port = 2222  # type: ignore[attr-defined]
    provision(ctx, spec)
    assert f"    qemu: b at deb@10.0.2.9:2222 {RUN_UUID} ssh" in messages(out)
