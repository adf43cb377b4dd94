"""provision.sh outside a guest: lint, options, the section plan, confirmation and failure handling.

Sections that change a system run for real inside a guest (tests/integration/test_provision.py). Here the
script runs on the test host only in ways that change nothing: --dry-run, --help, refused options, a
declined confirmation, and two sections run against a stand-in `apt-get` (a fake, because the real one
would change this machine; the stand-in only prints its arguments or fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = REPO / "templates"
RELEASES = ("buster", "bullseye", "bookworm", "trixie", "forky")
SCRIPT = TEMPLATES / "bookworm" / "provision.sh"
RULER = "=" * 76

DEFAULT = [
    "apt_update", "clean_packages", "clean_libraries", "preconfig_udev_ifnames", "preconfig_initramfs",
    "preconfig_grub", "preconfig_fstab", "preconfig_hosts", "apt_dist_upgrade", "clean_apt", "clean_history",
]  # fmt: skip
ON_REQUEST = [
    "zero_freespace",
    "clean_root_ssh",
    "clean_cloud_init",
    "clean_network",
    "clean_identity",
    "clean_self",
    "clean_shutdown",
]


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, script: Path = SCRIPT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *args], input=stdin, capture_output=True, text=True, timeout=20, env=env, check=False
    )


def plan(*args: str) -> list[str]:
    result = run("--dry-run", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.host_tools("shellcheck")
def test_shellcheck_passes() -> None:
    result = subprocess.run(
        ["shellcheck", "--shell=bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("release", RELEASES)
def test_every_release_ships_the_same_executable_script(release: str) -> None:
    copy = TEMPLATES / release / "provision.sh"
    assert copy.read_bytes() == SCRIPT.read_bytes(), (
        f"{copy} differs from {SCRIPT}: keep the copies identical (they are links to one file)"
    )
    assert os.access(copy, os.X_OK), f"{copy} is not executable"


def test_help_lists_every_section_and_option() -> None:
    result = run("-h")
    assert result.returncode == 0
    for name in DEFAULT + ON_REQUEST:
        assert f"  {name} " in result.stdout, name
    for option in ("--section", "--exclude", "--batch", "--confirm", "--dry-run", "--version"):
        assert option in result.stdout
    # The help shows the default sections in their run order.
    positions = [result.stdout.index(f"  {name} ") for name in DEFAULT]
    assert positions == sorted(positions)


def test_version() -> None:
    result = run("-v")
    assert result.returncode == 0
    assert result.stdout.startswith("provision.sh (vmbake) ")
    assert run("--version").stdout == result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--section", "bogus"], "unknown section 'bogus'"),
        (["-X", "clean_everything"], "unknown section 'clean_everything'"),
        (["--frobnicate"], "unknown option '--frobnicate'"),
        (["-S"], "needs a section name"),
        (["-B", "-C"], "--batch and --confirm exclude each other"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "BEGIN{" not in result.stdout


def test_default_plan_is_the_default_sections_in_order() -> None:
    assert plan() == DEFAULT
    assert plan("--section", "default") == DEFAULT


def test_provisioning_command_of_the_templates_adds_zero_freespace_last() -> None:
    assert plan("--batch", "--section", "default", "--section", "zero_freespace") == [
        *DEFAULT,
        "zero_freespace",
    ]


def test_sections_run_once_even_when_requested_twice_or_needed_by_another() -> None:
    assert plan("-S", "apt_update", "-S", "apt_dist_upgrade", "-S", "apt_update") == [
        "apt_update",
        "apt_dist_upgrade",
    ]
    # apt_dist_upgrade needs apt_update: it comes first, once.
    assert plan("-S", "apt_dist_upgrade") == ["apt_update", "apt_dist_upgrade"]


def test_clean_shutdown_runs_its_cleanups_first_and_each_once() -> None:
    expected = [
        "clean_apt",
        "clean_history",
        "clean_root_ssh",
        "clean_cloud_init",
        "clean_network",
        "clean_identity",
        "clean_self",
    ]
    assert plan("--section", "clean_shutdown") == [*expected, "clean_shutdown"]
    rest = [name for name in expected if name != "clean_history"]
    assert plan("-S", "clean_history", "-S", "clean_shutdown") == ["clean_history", *rest, "clean_shutdown"]


def test_exclude_skips_a_section_even_when_another_needs_it() -> None:
    assert plan("--exclude", "apt_dist_upgrade", "-X", "clean_libraries") == [
        name for name in DEFAULT if name not in ("apt_dist_upgrade", "clean_libraries")
    ]
    assert plan("-S", "clean_shutdown", "--exclude=clean_self", "-X", "clean_root_ssh") == [
        "clean_apt", "clean_history", "clean_cloud_init", "clean_network", "clean_identity", "clean_shutdown",
    ]  # fmt: skip
    assert plan("-S", "apt_dist_upgrade", "-X", "apt_update") == ["apt_dist_upgrade"]
    assert plan("-X", "default") == []


def test_declined_confirmation_runs_nothing() -> None:
    """-C asks before each section; answering 'n' skips it (apt_update: harmless even if the check failed)."""
    result = run("--confirm", "--section", "apt_update", stdin="n\n")
    assert result.returncode == 0, result.stderr
    assert "Run section apt_update" in result.stderr
    assert "BEGIN{apt_update}" not in result.stdout


def test_confirmation_without_an_answer_stops() -> None:
    result = run("-C", "-S", "apt_update", stdin="")
    assert result.returncode == 1
    assert "no answer" in result.stderr
    assert "BEGIN{" not in result.stdout


def test_refuses_to_run_sections_without_root() -> None:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0:
        result = run("-S", "apt_update")
    else:
        assert setpriv, "setpriv is missing (Debian package util-linux)"
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", str(SCRIPT), "-S", "apt_update"],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert "must run as root" in result.stderr


def fake_apt_get(tmp_path: Path, status: int) -> tuple[Path, dict[str, str]]:
    """A copy of the script (clean_self may only ever remove the copy) and a PATH whose apt-get prints its
    arguments and exits with `status`. Only root may run sections."""
    if os.geteuid() != 0:
        pytest.skip("the sections refuse to run without root")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "apt-get"
    stub.write_text(
        f'#!/bin/sh\necho "apt-get $*"\n[ {status} = 0 ] || echo "stand-in apt-get fails" >&2\nexit {status}\n'
    )
    stub.chmod(0o755)
    script = tmp_path / "provision.sh"
    shutil.copy2(SCRIPT, script)
    return script, {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}


def test_batch_sections_print_markers_and_run_apt_without_questions(tmp_path: Path) -> None:
    script, env = fake_apt_get(tmp_path, 0)
    result = run("--batch", "-S", "apt_update", env=env, script=script)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == RULER
    assert lines[1] == "BEGIN{apt_update}"
    assert lines[-1] == "END{apt_update}"
    call = lines[2]
    assert call.startswith("apt-get ") and call.endswith(" -qq update")
    assert " -y " in call and "--force-confold" in call


def test_without_batch_apt_may_ask(tmp_path: Path) -> None:
    script, env = fake_apt_get(tmp_path, 0)
    result = run("-S", "apt_update", env=env, script=script)
    assert result.returncode == 0, result.stderr
    assert " -y " not in result.stdout


def test_a_failing_command_ends_the_section_and_the_run(tmp_path: Path) -> None:
    script, env = fake_apt_get(tmp_path, 100)
    result = run("--batch", "-S", "apt_update", "-S", "clean_self", env=env, script=script)
    assert result.returncode == 1
    assert "FAILED{apt_update} (exit status 100)" in result.stdout
    assert "END{apt_update}" not in result.stdout
    assert "BEGIN{clean_self}" not in result.stdout  # the run stopped: the script is still there
    assert script.exists()
    assert "section apt_update failed" in result.stderr


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
@pytest.mark.parametrize(
    ("lines", "left"),
    [
        (
            ["ssh-ed25519 AAAAuser me@host", "ssh-ed25519 AAAAbuild vmbake-build-key", ""],
            ["ssh-ed25519 AAAAuser me@host"],
        ),
        (["ssh-ed25519 AAAAbuild vmbake-build-key", ""], None),
    ],
)
def test_clean_root_ssh_removes_the_build_key_alone(
    tmp_path: Path, lines: list[str], left: list[str] | None
) -> None:
    """The section runs for real, on a tmpfs mounted over /root in a mount namespace of its own (the host's
    /root is not touched); the user's keys stay, and a file with only the build's key goes with ~/.ssh."""
    out = tmp_path / "after"
    body = "\n".join(lines)
    script = (
        "set -e; mount -t tmpfs none /root; mkdir -m 700 /root/.ssh; "
        f"printf '%s\\n' {' '.join(repr(x) for x in lines)} > /root/.ssh/authorized_keys; "
        f"{SCRIPT} --batch --section clean_root_ssh; "
        f"if [ -e /root/.ssh ]; then cat /root/.ssh/authorized_keys > {out}; fi"
    )
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr + body
    if left is None:
        assert not out.exists(), out.read_text()
    else:
        assert [line for line in out.read_text().splitlines() if line] == left


def tree_stage(tmp_path: Path, **extra: str) -> dict[str, str]:
    """VMBAKE_STAGE=tree, and a PATH whose systemctl, shutdown and fstrim only record that they ran
    (stand-ins: the real ones would act on this machine if the script did not honour the stage)."""
    if os.geteuid() != 0:
        pytest.skip("the sections refuse to run without root")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("systemctl", "shutdown", "fstrim", "swapoff", "blkdiscard", "dd"):
        stub = bindir / tool
        stub.write_text(f'#!/bin/sh\necho "CALLED {tool} $*"\n')
        stub.chmod(0o755)
    return {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "VMBAKE_STAGE": "tree", **extra}


def test_in_the_tree_zero_freespace_has_nothing_to_do(tmp_path: Path) -> None:
    result = run("-B", "-S", "zero_freespace", env=tree_stage(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "fresh filesystems in the image tree: nothing to zero" in result.stdout
    assert "CALLED" not in result.stdout


def test_in_the_tree_clean_shutdown_powers_nothing_off(tmp_path: Path) -> None:
    needs = [
        "clean_apt",
        "clean_history",
        "clean_root_ssh",
        "clean_cloud_init",
        "clean_network",
        "clean_identity",
        "clean_self",
    ]
    excluded = [arg for name in needs for arg in ("-X", name)]
    assert plan("-S", "clean_shutdown", *excluded) == ["clean_shutdown"]  # nothing else runs on this host
    result = run("-B", "-S", "clean_shutdown", *excluded, env=tree_stage(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "image tree: nothing to power off" in result.stdout
    assert "CALLED" not in result.stdout and "power off requested" not in result.stdout


def test_in_the_tree_fstab_comes_from_the_builder_and_must_name_its_root(tmp_path: Path) -> None:
    """Without the builder's root in /etc/fstab the section fails and says why; it never rewrites it."""
    before = Path("/etc/fstab").read_bytes() if Path("/etc/fstab").exists() else None
    env = tree_stage(tmp_path, VMBAKE_ROOT="UUID=00000000-vmbake-test-not-there")
    result = run("-B", "-S", "preconfig_fstab", env=env)
    assert result.returncode == 1
    assert (
        "does not mount the builder's root filesystem (UUID=00000000-vmbake-test-not-there)" in result.stdout
    )
    assert (Path("/etc/fstab").read_bytes() if Path("/etc/fstab").exists() else None) == before
