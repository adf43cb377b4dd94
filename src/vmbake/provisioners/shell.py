"""The `shell` provisioner: upload each script to the guest, run it, stream its output, check its status.

Inline commands become one script behind `inline_shebang`. Variables reach the script through
`{{.Vars}}` in execute_command (or a sourced file with use_env_var_file). Starting a script is retried
until start_retry_timeout, because an earlier script may have rebooted the guest.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from vmbake.comm import DISCONNECTED
from vmbake.comm.ssh import ConnectError
from vmbake.config.provisioners import ShellConfig
from vmbake.errors import VmbakeError
from vmbake.provisioners import Run, flatten_env, packer_env, random_name, render
from vmbake.units import go_duration

RETRY_INTERVAL = 1.0


def remote_path(config: ShellConfig) -> str:
    if config.remote_path:
        return config.remote_path
    name = config.remote_file or random_name("script_%d.sh")
    return posixpath.join(config.remote_folder or "/tmp", name)


def inline_script(config: ShellConfig) -> str:
    return f"#!{config.inline_shebang or '/bin/sh -e'}\n" + "".join(line + "\n" for line in config.inline)


def provision(run: Run, config: ShellConfig) -> None:
    ctx = run.ctx
    env = packer_env(ctx, config.environment_vars, "shell")
    target = remote_path(config)
    env_file = ""
    if config.use_env_var_file:
        env_file = posixpath.join(config.remote_folder or "/tmp", random_name("varfile_%d.sh"))
        variables = ""
    else:
        variables = flatten_env(env, config.effective_env_var_format()).rstrip(" ")
    command = render(
        ctx, config.effective_execute_command(), Path=target, Vars=variables, EnvVarFile=env_file
    )
    with _scripts(run, config) as scripts:
        for local in scripts:
            ctx.ui.say(f"Provisioning with shell script: {local}")
            data = local.read_bytes()
            if not config.binary:
                data = data.replace(b"\r\n", b"\n")
            env_data = flatten_env(env, config.effective_env_var_format()).encode() if env_file else b""
            _run_script(run, config, data, target, env_file, env_data, command)
    pause = config.pause_after or 0.0
    if pause > 0:
        ctx.ui.say(f"Pausing {go_duration(pause)} after this provisioner...")
        run.sleep(pause)


@contextlib.contextmanager
def _scripts(run: Run, config: ShellConfig) -> Iterator[list[Path]]:
    """The local scripts to run in order; inline commands are written to a temporary file first."""
    if config.inline:
        directory = run.ctx.state.work_dir
        fd, name = tempfile.mkstemp(prefix="vmbake-shell", dir=directory)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(inline_script(config))
            yield [Path(name)]
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)
        return
    paths = ([config.script] if config.script else []) + list(config.scripts)
    if not paths:
        raise VmbakeError("shell provisioner: nothing to run", hint="give one of inline, script or scripts")
    for path in paths:
        if not Path(path).is_file():
            raise VmbakeError(
                f"shell provisioner: script {path} does not exist", hint="check the script path"
            )
    yield [Path(p) for p in paths]


def _run_script(
    run: Run, config: ShellConfig, data: bytes, target: str, env_file: str, env_data: bytes, command: str
) -> None:
    ctx = run.ctx
    start_timeout = config.start_retry_timeout
    deadline = time.monotonic() + start_timeout
    while True:
        run.check_cancel()
        comm = run.comm()
        try:
            comm.upload_bytes(data, target, mode=0o755)
            if env_file:
                comm.upload_bytes(env_data, env_file, mode=0o644)
            status = comm.run(
                command,
                on_stdout=ctx.ui.message,
                on_stderr=ctx.ui.error,
                pty=_pty(run),
                timeout=run.remaining(),
            )
            break
        except ConnectError as exc:
            if not exc.retry or time.monotonic() + RETRY_INTERVAL > deadline:
                raise VmbakeError(
                    f"shell provisioner: cannot start the script within start_retry_timeout "
                    f"({go_duration(start_timeout)}): {exc.message}",
                    hint=exc.hint,
                ) from None
            ctx.ui.debug(f"retrying the script upload: {exc.message}")
            run.sleep(RETRY_INTERVAL)
    if status == DISCONNECTED:
        if not config.expect_disconnect and DISCONNECTED not in config.valid_exit_codes:
            raise VmbakeError(
                "shell provisioner: the script's connection dropped before it finished",
                hint='if the script reboots or halts the guest on purpose, set "expect_disconnect": true',
            )
    elif status not in (config.valid_exit_codes or [0]):
        allowed = ", ".join(str(c) for c in config.valid_exit_codes or [0])
        raise VmbakeError(
            f"shell provisioner: the script exited with status {status} (allowed: {allowed})",
            hint="see the script's output above, or add the status to valid_exit_codes",
        )
    if not config.skip_clean:
        _clean(run, [p for p in (target, env_file) if p], quiet=status == DISCONNECTED)


def _pty(run: Run) -> bool:
    return bool(getattr(run.ctx.config, "ssh_pty", False))


def _clean(run: Run, paths: list[str], *, quiet: bool) -> None:
    """Remove the uploaded files. After an expected disconnect the guest may be gone for good: only warn."""
    try:
        run.comm().remove(paths)
    except ConnectError as exc:
        if quiet:
            run.ctx.ui.debug(f"not removing {paths}: {exc.message}")
            return
        raise VmbakeError(f"shell provisioner: cannot remove {', '.join(paths)}: {exc.message}") from None
    except VmbakeError as exc:
        if not quiet:
            run.ctx.ui.warn(f"could not remove {', '.join(paths)} from the guest: {exc.message}")
