"""provision_stage "tree": the key, the builder's step list, the check boot's view, the tree's variables.

The tree itself (mounts, chroot, provision.sh there) runs for real in tests/integration/test_tree_stage.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from vmbake.bootstrap.layout import plan_layout
from vmbake.bootstrap.tree import (
    RawDisk,
    apt_lists_state,
    drop_untouched_lists,
    first_boot_script,
    needs_update,
    tree_env,
)
from vmbake.builders.bootstrap import qemu_view
from vmbake.config.bootstrap import BootstrapConfig, Partition, validate_bootstrap
from vmbake.config.fields import Decoder

from .test_report import context


def test_the_key_defaults_to_vm_and_refuses_other_values() -> None:
    assert BootstrapConfig().provision_stage == "vm"
    decoder = Decoder("t.json")
    decoder.decode(BootstrapConfig, {"provision_stage": "host"}, "builders[0]")
    problems = [str(p) for p in decoder.problems]
    assert any("provision_stage" in p and "tree" in p for p in problems), problems


def test_check_boot_view_boots_the_raw_work_disk_on_a_snapshot() -> None:
    config = BootstrapConfig(provision_stage="tree", format="qcow2", qemuargs=[["-smp", "2"]])
    check = qemu_view(config, check_boot=True)
    assert check.format == "raw"
    assert check.qemuargs == [["-smp", "2"], ["-snapshot"]]
    final = qemu_view(config)
    assert final.format == "qcow2" and final.qemuargs == [["-smp", "2"]]


def names(tmp_path: Path, **keys: object) -> list[str]:
    from vmbake.build import builder_steps

    ctx, _ = context(tmp_path)
    ctx.builder_type = "debian-bootstrap"
    ctx.config = BootstrapConfig(**keys)  # type: ignore[arg-type]
    return [step.name for step in builder_steps(ctx)]


def test_tree_plan_provisions_before_the_only_boot_and_finishes_after_it(tmp_path: Path) -> None:
    steps = names(tmp_path, provision_stage="tree")
    order = ["stepBootstrapRootfs", "stepBootstrapDisk", "StepTreeProvision", "stepRun", "StepConnect",
             "StepCheckBoot", "StepTreeFinish", "StepWriteReport", "StepCheckSizeBudget", "StepVerifyImage"]  # fmt: skip
    assert [n for n in steps if n in order] == order
    # No provisioning, shutdown or second conversion in the guest, and no report gathered there: the
    # tree gives the files' facts (StepTreeProvision), the check boot the running system's.
    for absent in (
        "StepProvision",
        "stepShutdown",
        "stepConvertDisk",
        "stepBootstrapClearKey",
        "StepCollectReport",
    ):
        assert absent not in steps


def test_tree_plan_without_a_communicator_never_boots(tmp_path: Path) -> None:
    steps = names(tmp_path, provision_stage="tree", communicator="none")
    assert "StepTreeProvision" in steps and "StepTreeFinish" in steps
    assert not {"stepRun", "StepConnect", "StepCollectReport"} & set(steps)


def test_vm_plan_is_unchanged(tmp_path: Path) -> None:
    steps = names(tmp_path)
    assert "StepTreeProvision" not in steps and "StepProvision" in steps and "stepShutdown" in steps


def test_tree_env_names_the_stage_the_root_and_the_guest_disk() -> None:
    config = BootstrapConfig(
        partitions=[Partition("/boot", 512 << 20), Partition("/", None)], disk_size=4 << 30
    )
    plan = plan_layout(config)
    root = next(p for p in plan if p.mountpoint == "/")
    env = tree_env(RawDisk(Path("disk.raw"), plan, "/dev/vda"))
    assert env == {"VMBAKE_STAGE": "tree", "VMBAKE_DISK": "/dev/vda", "VMBAKE_ROOT": f"UUID={root.fs_uuid}"}


def test_shipped_bootstrap_builds_use_the_tree_stage() -> None:
    from vmbake.template import load_template

    for name in ("bookworm", "trixie", "forky", "bullseye", "buster"):
        template = load_template(name)
        stages = [
            b.config.provision_stage
            for b in template.builds
            if isinstance(getattr(b, "config", None), BootstrapConfig)
        ]
        # bookworm and trixie have a second bootstrap build, for arm64
        assert stages == ["tree"] * (2 if name in ("bookworm", "trixie") else 1), (name, stages)


def test_validation_accepts_the_tree_stage() -> None:
    problems: list = []
    validate_bootstrap(dataclasses.replace(BootstrapConfig(), provision_stage="tree"), problems)
    assert problems == []


def test_trim_covers_every_ext_filesystem_of_the_tree_and_nothing_else() -> None:
    from vmbake.bootstrap.tree import trim_argvs

    config = BootstrapConfig(
        firmware="hybrid",
        disk_size=6 << 30,
        partitions=[
            Partition("/boot", 512 << 20),
            Partition("/", 3 << 30),
            Partition("/var", 1 << 30),
            Partition("swap", None, "swap"),
        ],
    )
    argvs = trim_argvs(Path("/w/tree"), plan_layout(config))
    assert argvs == [["fstrim", "--verbose", m] for m in ("/w/tree", "/w/tree/boot", "/w/tree/var")]


def test_report_facts_of_the_tree_name_the_guests_devices() -> None:
    from vmbake.report.collect import Filesystem, ImageFacts, rename_sources
    from vmbake.steps.tree_provision import guest_devices

    config = BootstrapConfig(
        disk_size=6 << 30,
        partitions=[Partition("/boot", 512 << 20), Partition("/", 3 << 30), Partition("swap", None, "swap")],
    )
    plan = plan_layout(config)
    names = guest_devices(RawDisk(Path("disk.raw"), plan, "/dev/vda"))
    numbers = {p.mountpoint: p.number for p in plan}
    assert names == {"/boot": f"/dev/vda{numbers['/boot']}", "/": f"/dev/vda{numbers['/']}"}
    facts = ImageFacts(
        filesystems=[
            Filesystem("/dev/loop7p2", "ext4", "/boot", 1, 1, 0),
            Filesystem("/dev/loop7p3", "ext4", "/", 1, 1, 0),
            Filesystem("tmpfs", "tmpfs", "/run", 1, 1, 0),
        ]
    )
    rename_sources(facts, names)
    assert [fs.source for fs in facts.filesystems] == [names["/boot"], names["/"], "tmpfs"]


def loaded_shutdown_command(tmp_path: Path, **keys: object) -> str:
    import json

    from vmbake.template import load_template

    block = {"type": "debian-bootstrap", "suite": "trixie", **keys}
    path = tmp_path / "template.json"
    path.write_text(json.dumps({"builders": [block]}))
    (build,) = load_template(path).builds
    assert isinstance(build.config, BootstrapConfig)
    return build.config.shutdown_command


def test_tree_stage_has_no_shutdown_command_unless_given(tmp_path: Path) -> None:
    # In the tree (a chroot) there is nothing to power off: the default `systemctl poweroff` would fail.
    assert loaded_shutdown_command(tmp_path, provision_stage="tree") == ""
    assert loaded_shutdown_command(tmp_path, provision_stage="tree", shutdown_command="apt-get clean") == (
        "apt-get clean"
    )
    assert loaded_shutdown_command(tmp_path) == "systemctl poweroff"


def test_tree_plan_keeps_the_package_lists_only_for_provisioners(tmp_path: Path) -> None:
    """mmdebstrap leaves its lists for the tree's provisioners; without provisioners it cleans them itself."""
    from vmbake.build import builder_steps
    from vmbake.config.provisioners import ShellConfig
    from vmbake.steps.bootstrap_rootfs import StepBootstrapRootfs
    from vmbake.template.model import ProvisionerSpec

    def rootfs_step(provisioned: bool, args: list[str]) -> StepBootstrapRootfs:
        ctx, _ = context(tmp_path)
        ctx.builder_type = "debian-bootstrap"
        ctx.config = BootstrapConfig(provision_stage="tree", mmdebstrap_args=args)
        if provisioned:
            ctx.provisioners = [ProvisionerSpec("shell", ShellConfig(inline=["apt-get update"]))]
        return next(s for s in builder_steps(ctx) if isinstance(s, StepBootstrapRootfs))

    assert rootfs_step(True, []).keep_lists
    assert not rootfs_step(False, []).keep_lists
    # The user's own --skip keeps them in the image: they are not the builder's to remove.
    assert not rootfs_step(True, ["--skip=cleanup/apt"]).keep_lists


def lists_tree(root: Path) -> Path:
    lists = root / "var/lib/apt/lists"
    (lists / "partial").mkdir(parents=True)
    (lists / "auxfiles").mkdir()
    (lists / "lock").write_text("")
    for name in (
        "deb.debian.org_debian_dists_trixie_InRelease",
        "deb.debian.org_debian_dists_trixie_main_Packages",
    ):
        (lists / name).write_text(name)
    return lists


def test_untouched_package_lists_go_as_mmdebstrap_would_remove_them(tmp_path: Path) -> None:
    lists = lists_tree(tmp_path)
    before = apt_lists_state(tmp_path)
    assert sorted(before) == sorted(p.name for p in lists.iterdir() if p.name.startswith("deb."))
    assert drop_untouched_lists(tmp_path, before)
    assert sorted(p.name for p in lists.iterdir()) == ["lock", "partial"]


def test_package_lists_a_provisioner_refreshed_or_removed_stay_as_it_left_them(tmp_path: Path) -> None:
    lists = lists_tree(tmp_path)
    release = lists / "deb.debian.org_debian_dists_trixie_InRelease"
    before = apt_lists_state(tmp_path)
    # apt-get update, answered "not modified", only changes the Release file's status (ctime): as chmod does.
    release.chmod(0o600)
    release.chmod(0o644)
    assert not drop_untouched_lists(tmp_path, before)
    assert release.exists() and (lists / "auxfiles").is_dir()
    # clean_apt removed them: nothing more to do, and nothing the provisioner left is touched.
    for path in lists.iterdir():
        if path.name.startswith("deb."):
            path.unlink()
    assert not drop_untouched_lists(tmp_path, before)
    assert (lists / "auxfiles").is_dir()
    assert not drop_untouched_lists(tmp_path / "none", {})


def unit(root: Path, name: str, text: str) -> None:
    path = root / "usr/lib/systemd/system" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_first_boot_work_runs_the_known_units_commands_then_the_stamp(tmp_path: Path) -> None:
    for name in ("ldconfig.service", "systemd-hwdb-update.service", "systemd-update-done.service"):
        unit(tmp_path, name, "[Unit]\nConditionNeedsUpdate=/etc\n")
    unit(tmp_path, "ssh.service", "[Unit]\nDescription=OpenBSD Secure Shell server\n")
    assert first_boot_script(tmp_path) is None  # no systemd-update-done program
    done = tmp_path / "usr/lib/systemd/systemd-update-done"
    done.write_text("")
    assert first_boot_script(tmp_path) == (
        "set -e\nsystemd-hwdb update\nldconfig -X\n/usr/lib/systemd/systemd-update-done\n"
    )
    # A unit vmbake does not know waits for /usr to change: stamping would keep it from ever running.
    unit(tmp_path, "rebuild-fonts.service", "[Unit]\nConditionNeedsUpdate=/var\n")
    assert first_boot_script(tmp_path) is None


def test_needs_update_compares_the_stamps_with_usr_as_systemd_does(tmp_path: Path) -> None:
    import os

    for d in ("usr", "etc", "var"):
        (tmp_path / d).mkdir()
    assert needs_update(tmp_path)  # no stamps
    usr_time = (tmp_path / "usr").stat().st_mtime_ns
    for stamp in ("etc/.updated", "var/.updated"):
        (tmp_path / stamp).write_text("TIMESTAMP_NSEC=0\n")
        os.utime(tmp_path / stamp, ns=(usr_time, usr_time))
    assert not needs_update(tmp_path)
    os.utime(tmp_path / "var/.updated", ns=(usr_time - 1, usr_time - 1))
    assert needs_update(tmp_path)
