"""The README's first command sets vmbake up on a stock Debian 13 (trixie), with Debian's own
python3.

Debian's python3 is externally managed (PEP 668): `pip install .` is refused there, so the set-up makes a
venv. This test makes a stock Debian with mmdebstrap (minbase with python3, python3-venv and python3-pip, what
a new user's machine has after scripts/install-deps.sh), copies the source tree in, and runs the set-up part
of the README's first command inside it as root, then `vmbake --version` and `vmbake validate trixie`. pip in
the chroot fetches vmbake's dependencies from PyPI through the host's network. The .debs come from, and go
back to, vmbake's own .deb cache, so a second run downloads nothing from Debian.

The chroot is mmdebstrap's customize hook (it mounts /proc, /dev and /sys and copies resolv.conf for it), and
the tree is thrown away at the end (target /dev/null): nothing is left behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmbake.bootstrap import cache as debcache
from vmbake.config.bootstrap import DEFAULT_MIRROR

REPO = Path(__file__).resolve().parents[2]
SUITES = ("trixie",)  # the current stable; bookworm passed too, but CI's time goes to other guest tests
VALIDATED = "trixie"  # the shipped template the set-up is checked with
# What the source tree needs to build and install: the package, its data and the build's metadata.
SOURCE_PARTS = ("src", "templates", "scripts", "pyproject.toml", "README.md")

pytestmark = [pytest.mark.integration, pytest.mark.network]


def readme_first_command() -> str:
    """The first line of the README's first shell block."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"```bash\n(.+)\n", text)
    assert match, "README.md has no ```bash block"
    return match.group(1).strip()


def setup_part(command: str) -> list[str]:
    """The commands between installing Debian's packages and the first vmbake build."""
    parts = [p.strip() for p in command.split("&&")]
    assert parts[0] == "scripts/install-deps.sh", f"the first command no longer starts with it: {command}"
    assert parts[-1].startswith("vmbake build "), f"the first command no longer ends with a build: {command}"
    return parts[1:-1]


def test_the_readme_names_a_setup_that_needs_no_system_pip() -> None:
    setup = setup_part(readme_first_command())
    assert setup, "nothing installs vmbake between install-deps.sh and the build"
    assert not any(re.match(r"(sudo )?pip3? install", part) for part in setup), (
        "a bare pip install is refused by Debian's python3 (PEP 668)"
    )
    deps = (REPO / "scripts" / "install-deps.sh").read_text()
    assert re.search(r"^\s*python3-venv\b", deps, re.MULTILINE), "install-deps.sh must install python3-venv"


def _stage_source(dest: Path) -> None:
    dest.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".venv", "*.egg-info")
    for part in SOURCE_PARTS:
        path = REPO / part
        if path.is_dir():
            shutil.copytree(path, dest / part, ignore=ignore, symlinks=True)
        else:
            shutil.copy2(path, dest / part)


def _local_cas_hooks() -> list[str]:
    """Hooks that give the chroot the certificate authorities the host added locally.

    A host behind a TLS-inspecting proxy reaches PyPI only through a CA it was given in
    /usr/local/share/ca-certificates; a Debian machine on that network would be given it in the same way.
    Debian's pip (ensurepip's wheel too) uses the system store. No local CA: no hooks."""
    local = Path("/usr/local/share/ca-certificates")
    cas = sorted(str(p) for p in local.glob("*.crt")) if local.is_dir() else []
    if not cas:
        return []
    return [
        f"--customize-hook=copy-in {' '.join(cas)} /usr/local/share/ca-certificates/",
        '--customize-hook=chroot "$1" update-ca-certificates --fresh',
    ]


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as exits:
        yield exits


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("mmdebstrap") is None, reason="needs root and mmdebstrap"
)
@pytest.mark.timeout(900)
@pytest.mark.parametrize("suite", SUITES)
def test_readme_setup_works_on_stock_debian(suite: str, tmp_path: Path, stack: contextlib.ExitStack) -> None:
    setup = " && ".join(setup_part(readme_first_command()))
    stage = tmp_path / "stage"
    _stage_source(stage / "vmbake")
    cache_dir = debcache.deb_cache_dir(suite, DEFAULT_MIRROR)
    # mmdebstrap reads a private copy of the shared cache (another build may add to it meanwhile).
    view = stack.enter_context(debcache.use_cache(cache_dir, None, suite=suite, architecture="amd64"))
    used = tmp_path / "used-debs"
    used.mkdir()
    inside = f"cd /root/vmbake && {setup} && vmbake --version && vmbake validate {VALIDATED}"
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--include=python3,python3-venv,python3-pip,ca-certificates",
        "--skip=download/empty",
        "--skip=essential/unlink",
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives/',
        f"--setup-hook=sync-in {view.snapshot} /var/cache/apt/archives/",
        f"--customize-hook=sync-out /var/cache/apt/archives {used}",
        *_local_cas_hooks(),
        f"--customize-hook=copy-in {stage / 'vmbake'} /root",
        f'--customize-hook=chroot "$1" sh -c {shlex.quote(inside)}',
        suite,
        "/dev/null",
        DEFAULT_MIRROR,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # the chroot's, not pyenv's
    result = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=840, env=env, check=False
    )
    debcache.absorb(used, cache_dir, view.before)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"set-up failed in a stock {suite}:\n{output[-6000:]}"
    assert re.search(r"^vmbake \d", output, re.MULTILINE), output[-3000:]
    assert "Template validated successfully." in output or "The configuration is valid." in output, output[
        -3000:
    ]
