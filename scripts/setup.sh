#!/bin/sh
# Installs vmbake from this source tree into its own virtual environment, .venv, and puts the vmbake
# command on PATH as a link in /usr/local/bin. A venv because Debian 12 and 13 mark their python3 as
# externally managed (PEP 668): a plain `pip install .` is refused there. Needs python3 >= 3.11 with its
# venv module (Debian: python3-venv, which scripts/install-deps.sh installs) and PyPI for the dependencies.
# Run it again to update the installation. Usage: scripts/setup.sh
set -eu

cd "$(dirname "$0")/.."
src=$(pwd)
venv="$src/.venv"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: vmbake needs python3 3.11 or newer; this python3 is $(python3 -V 2>&1)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  if ! python3 -m venv "$venv"; then
    rm -rf "$venv"
    echo "setup.sh: python3 cannot make a virtual environment; install python3-venv (apt-get install python3-venv)" >&2
    exit 1
  fi
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$src"
$SUDO ln -sfn "$venv/bin/vmbake" /usr/local/bin/vmbake
echo "vmbake is installed in $venv; /usr/local/bin/vmbake runs it: $("$venv/bin/vmbake" --version)"
