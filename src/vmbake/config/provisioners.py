"""Keys of the `shell`, `file` and `shell-local` provisioners, with Packer 1.6.6's defaults.

The keys every provisioner shares (`only`, `except`, `override`, `pause_before`, `max_retries`, `timeout`)
are not here: the template loader reads them into `ProvisionerSpec`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmbake.config.fields import opt

SHELL_EXECUTE = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}"
SHELL_EXECUTE_ENV_FILE = "chmod +x {{.Path}}; . {{.EnvVarFile}} && {{.Path}}"
SHELL_ENV_FORMAT = "%s='%s' "
SHELL_ENV_FILE_FORMAT = "export %s='%s'\n"


@dataclass(frozen=True)
class ShellConfig:
    """A `shell` provisioner: uploads a script to the guest and runs it over the communicator."""

    inline: list[str] = opt(factory=list, doc="Commands run in one script, each line after inline_shebang")
    script: str = opt("", "Local script uploaded and run")
    scripts: list[str] = opt(factory=list, doc="Local scripts uploaded and run in turn")
    environment_vars: list[str] = opt(factory=list, doc="KEY=VALUE pairs set for the script (sorted, quoted)")
    env_var_format: str = opt("", "printf-style format of one variable (default: \"%s='%s' \")")
    execute_command: str = opt(
        "",
        "Command that runs the script; {{.Path}}, {{.Vars}} and {{.EnvVarFile}} are filled in",
        runtime=True,
    )
    use_env_var_file: bool = opt(False, "Write the variables to a file sourced by execute_command")
    inline_shebang: str = opt("/bin/sh -e", "Interpreter line put before inline commands")
    remote_folder: str = opt("/tmp", "Guest directory the script is uploaded to")
    remote_file: str = opt("", "Name of the uploaded script (default: script_NNNN.sh)")
    remote_path: str = opt("", "Full guest path of the uploaded script (default: remote_folder/remote_file)")
    skip_clean: bool = opt(False, "Leave the uploaded script on the guest")
    expect_disconnect: bool = opt(False, "A dropped connection while the script runs is not an error")
    valid_exit_codes: list[int] = opt(factory=lambda: [0], doc="Exit statuses that count as success")
    start_retry_timeout: float = opt(
        "5m",
        "How long to retry starting the script (the guest may reboot; 0: the default)",
        kind="duration",
        zero_is_default=True,
    )
    pause_after: float | None = opt("", "Wait this long after the script finished", kind="duration")
    binary: bool = opt(False, "Upload the script as is, without turning CRLF into LF")

    def effective_execute_command(self) -> str:
        """execute_command, or Packer's default for the chosen way of passing variables."""
        if self.execute_command:
            return self.execute_command
        return SHELL_EXECUTE_ENV_FILE if self.use_env_var_file else SHELL_EXECUTE

    def effective_env_var_format(self) -> str:
        if self.env_var_format:
            return self.env_var_format
        return SHELL_ENV_FILE_FORMAT if self.use_env_var_file else SHELL_ENV_FORMAT


@dataclass(frozen=True)
class FileConfig:
    """A `file` provisioner: copies files or directories to (or from) the guest."""

    source: str = opt("", "Local file or directory to upload (a trailing / uploads its content)")
    sources: list[str] = opt(factory=list, doc="Several sources uploaded into destination")
    content: str = opt("", "Text written to destination instead of a source file (Packer 1.7+)")
    destination: str = opt("", "Path on the guest (or on the host when direction is download)")
    direction: str = opt(
        "upload", "'upload' to the guest or 'download' from it", choices=("upload", "download")
    )
    generated: bool = opt(
        False, "The source is made during the build: do not check it exists at validate time"
    )


@dataclass(frozen=True)
class ShellLocalConfig:
    """A `shell-local` provisioner: runs a command on the host running vmbake."""

    command: str = opt("", "Single command run on the host (an inline alternative)")
    inline: list[str] = opt(factory=list, doc="Commands run in one local script after inline_shebang")
    script: str = opt("", "Local script run on the host")
    scripts: list[str] = opt(factory=list, doc="Local scripts run in turn on the host")
    environment_vars: list[str] = opt(factory=list, doc="KEY=VALUE pairs set for the command")
    env_var_format: str = opt("", "printf-style format of one variable (default: \"%s='%s' \")")
    use_env_var_file: bool = opt(
        False,
        "Write the variables to a private file (mode 0600) that {{.Vars}} sources, instead of into the "
        "command line, where every user of the host can read them (ps); its path is {{.EnvVarFile}}",
    )
    execute_command: list[str] = opt(
        factory=lambda: ["/bin/sh", "-c", "{{.Vars}} {{.Script}}"],
        doc="Argv that runs the script; {{.Vars}}, {{.Script}} and {{.EnvVarFile}} are filled in",
        runtime=True,
    )
    inline_shebang: str = opt("/bin/sh -e", "Interpreter line put before inline commands")
    only_on: list[str] = opt(factory=list, doc="Run only on these host systems (linux, darwin, ...)")
    use_linux_pathing: bool = opt(
        False, "Windows Subsystem for Linux paths (Windows hosts only)", supported=False
    )
    valid_exit_codes: list[int] = opt(factory=lambda: [0], doc="Exit statuses that count as success")
    tempfile_extension: str = opt("", "Extension of the temporary script file")


@dataclass(frozen=True)
class BreakpointConfig:
    """A `breakpoint` provisioner: pauses the build until enter is pressed, to look at the guest."""

    disable: bool = opt(False, "Do not pause; only say that the breakpoint was passed")
    note: str = opt("", "Text shown when the build pauses here")
