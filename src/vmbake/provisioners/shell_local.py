"""The `shell-local` provisioner: run a command or script on the host, with the build's variables.

Output streams line by line as the command runs (stdout and stderr merged, as one terminal would show).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vmbake import procs
from vmbake.config.provisioners import SHELL_ENV_FILE_FORMAT, ShellLocalConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run, flatten_env, packer_env, render

_PLATFORMS = {"linux": "linux", "darwin": "darwin", "win32": "windows", "freebsd": "freebsd"}


def provision(run: Run, config: ShellLocalConfig) -> None:
    ctx = run.ctx
    if config.only_on:
        here = _PLATFORMS.get(sys.platform, sys.platform)
        if here not in config.only_on:
            ctx.ui.say(f"Skipping shell-local: it runs only on {', '.join(config.only_on)}")
            return
    env = packer_env(ctx, config.environment_vars, "shell-local")
    codes = config.valid_exit_codes or [0]
    with _scripts(run, config) as scripts, _env_file(config, env) as env_file:
        if env_file:
            variables = f". {shlex.quote(env_file)} &&"
        else:
            variables = flatten_env(env, config.env_var_format or "%s='%s' ").rstrip(" ")
        for script in scripts:
            ctx.ui.say(f"Running local shell script: {script}")
            own = {
                "Vars": variables,
                "Script": str(script),
                "Command": config.command,
                "EnvVarFile": env_file,
            }
            argv = [render(ctx, part, **own) for part in config.execute_command]
            if not argv:
                raise VmbakeError(
                    "shell-local: execute_command is empty", hint="remove it to use the default"
                )
            result = procs.run(
                argv,
                check=False,
                on_line=ctx.ui.message,
                env=env,
                timeout=run.remaining(),
                what="shell-local",
            )
            if result.returncode not in codes:
                raise VmbakeError(
                    f"shell-local: {script} exited with status {result.returncode} "
                    f"(allowed: {', '.join(str(c) for c in codes)})",
                    hint="see its output above",
                )


@contextlib.contextmanager
def _env_file(config: ShellLocalConfig, env: dict[str, str]) -> Iterator[str]:
    """With use_env_var_file, a private file of `export NAME='value'` lines (mode 0600), removed after;
    else no file ("")."""
    if not config.use_env_var_file:
        yield ""
        return
    fd, name = tempfile.mkstemp(prefix="vmbake-shell-local-vars-", suffix=".sh")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(flatten_env(env, SHELL_ENV_FILE_FORMAT))
        yield name
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


@contextlib.contextmanager
def _scripts(run: Run, config: ShellLocalConfig) -> Iterator[list[Path]]:
    inline = list(config.inline) or ([config.command] if config.command else [])
    if inline:
        fd, name = tempfile.mkstemp(prefix="vmbake-shell-local", suffix=config.tempfile_extension or "")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"#!{config.inline_shebang or '/bin/sh -e'}\n" + "".join(c + "\n" for c in inline))
            os.chmod(name, 0o700)
            yield [Path(name)]
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return
    paths = ([config.script] if config.script else []) + list(config.scripts)
    if not paths:
        raise VmbakeError(
            "shell-local: nothing to run", hint="give one of command, inline, script or scripts"
        )
    for path in paths:
        if not Path(path).is_file():
            raise VmbakeError(f"shell-local: script {path} does not exist", hint="check the script path")
    yield [Path(p).resolve() for p in paths]
