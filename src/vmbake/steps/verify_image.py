"""StepVerifyImage: with `verify: true`, boot the finished image on its own and check it (last step).

Reads config (machine keys, ssh_username, ssh_password, ssh_private_key_file, ssh_timeout), state.disk_paths[0],
state.ssh_private_key_path, state.efivars_path. Writes nothing. Boots with -snapshot, so the artifact is
not changed. When the only key is the build's temporary one (which builds remove from the guest), a
refused login still counts: the image reached SSH, and the checks inside the guest are skipped.
"""

from __future__ import annotations

from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps import Step
from vmbake.steps._qemu import main_disk, qemu_config
from vmbake.verify import VerifyOptions, verify_image


class StepVerifyImage(Step):
    name = "StepVerifyImage"

    def run(self, ctx: BuildContext) -> None:
        config = qemu_config(ctx, self.name)
        if not config.verify:
            return
        disk = main_disk(ctx)
        user_key = config.ssh_private_key_file
        key = ctx.state.ssh_private_key_path
        options = VerifyOptions(
            image=disk,
            ssh_key=key,
            user=config.ssh_username or "root",
            password=config.ssh_password,
            timeout=config.ssh_timeout,
            key_passphrase=config.ssh_key_passphrase,
            login_optional=not user_key and not config.ssh_password,
        )
        ctx.ui.say("Verifying the image: booting it alone...")
        result = verify_image(
            options,
            config,
            say=ctx.ui.message,
            message=ctx.ui.message,
            efivars=ctx.state.efivars_path,
            cancel=ctx.cancel,
        )
        if not result.ok:
            tail = f"; the guest's console ended with:\n{result.console_tail}" if result.console_tail else ""
            raise StepError(
                self.name,
                f"FAIL: {result.reason}",
                hint=f"boot it by hand with 'vmbake verify {disk}'{tail}",
            )
        ctx.ui.say(f"Verify PASS: {result.reason}")
