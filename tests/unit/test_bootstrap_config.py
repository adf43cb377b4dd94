"""The debian-bootstrap keys: defaults, and the cross-key checks that fail at validate time."""

from __future__ import annotations

from typing import Any

import pytest

from vmbake.config.bootstrap import BootstrapConfig, content_estimate, validate_bootstrap
from vmbake.config.fields import Decoder
from vmbake.errors import Problem


def problems(block: dict[str, Any]) -> list[Problem]:
    decoder = Decoder("template.json")
    config = decoder.decode(BootstrapConfig, block, "builders[0]")
    validate_bootstrap(config, decoder, "builders[0]")
    return decoder.problems


def rendered(block: dict[str, Any]) -> str:
    return "\n".join(p.render() for p in problems(block))


def test_defaults_suit_a_small_image() -> None:
    config = BootstrapConfig()
    assert (config.suite, config.kernel, config.firmware, config.variant) == (
        "bookworm", "linux-image-amd64", "bios", "apt",
    )  # fmt: skip
    assert (config.disk_size, config.format, config.memory, config.headless) == (2 << 30, "qcow2", 1024, True)
    assert config.ssh_username == "root"
    assert config.dpkg_excludes == ["docs", "man", "info", "locales", "hwdb"]
    assert problems({}) == []


def test_a_full_valid_block_has_no_problems() -> None:
    block = {
        "suite": "trixie",
        "kernel": "linux-image-cloud-amd64",
        "firmware": "hybrid",
        "disk_size": "5120M",
        "partitions": [
            {"mountpoint": "/boot", "size": "512M", "fs": "ext4"},
            {"mountpoint": "/", "size": "2G"},
            {"mountpoint": "/var", "size": "1G"},
            {"mountpoint": "/tmp", "size": "512M"},
            {"mountpoint": "swap", "fs": "swap"},
        ],
        "root_password": "$y$j9T$abc$def",
        "include": ["curl"],
        "apt_proxy": "http://10.0.0.1:3142",
    }
    assert problems(block) == []


def test_unknown_suite_names_the_key_and_suggests() -> None:
    text = rendered({"suite": "bokworm"})
    assert "template.json: builders[0].suite: unknown Debian suite 'bokworm'" in text
    assert "did you mean 'bookworm'?" in text


def test_two_roots_and_no_root() -> None:
    two = rendered({"partitions": [{"mountpoint": "/", "size": "1G"}, {"mountpoint": "/"}]})
    assert "builders[0].partitions: the layout has 2 root partitions" in two
    none = rendered({"partitions": [{"mountpoint": "/var"}]})
    assert "builders[0].partitions: the layout has no root partition" in none


def test_partitions_larger_than_the_disk() -> None:
    text = rendered({"disk_size": "2G", "partitions": [{"mountpoint": "/", "size": "3G"}]})
    assert "builders[0].partitions: the partitions need 3.0 GiB" in text
    assert "more than disk_size 2G" in text


def test_root_must_be_ext4_and_only_one_rest() -> None:
    text = rendered({"partitions": [{"mountpoint": "/", "fs": "ext2"}, {"mountpoint": "/var"}]})
    assert "the root filesystem must be ext4, not 'ext2'" in text
    assert "2 partitions have no size" in text


def test_disk_smaller_than_the_content_says_the_estimate() -> None:
    text = rendered({"disk_size": "700M"})
    need = content_estimate("bookworm", "linux-image-amd64")
    assert need == 1024 << 20
    assert "builders[0].disk_size: disk_size 700M leaves" in text
    assert "less than the estimated 1.0 GiB a bookworm image with linux-image-amd64 needs" in text
    assert "raise disk_size to at least" in text
    # The cloud kernel needs less: 1G is enough for it, not for the generic kernel.
    assert problems({"disk_size": "1G", "kernel": "linux-image-cloud-amd64"}) == []
    assert problems({"disk_size": "1G"}) != []


def test_small_root_beside_a_big_var_counts_both() -> None:
    ok = {"disk_size": "4G", "partitions": [{"mountpoint": "/", "size": "600M"}, {"mountpoint": "/var"}]}
    assert problems(ok) == []
    small = {"disk_size": "4G", "partitions": [{"mountpoint": "/", "size": "300M"}, {"mountpoint": "/tmp"}]}
    assert "less than the estimated" in rendered(small)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("root_ssh_keys", ["/nonexistent/id.pub"], "neither a public key line nor an existing file"),
        ("users", [{"name": "Bad Name"}], "is not a valid login name"),
        ("users", [{"name": "root"}], "is a system account"),
        ("hostname", "bad_name!", "is not a valid host name"),
        ("dpkg_excludes", ["manpages"], "is neither a set nor a path glob"),
        ("exclude", ["openssh-server"], "'openssh-server' cannot be excluded"),
        ("kernel", "linux-image-rt-amd64", "is not valid"),
        ("firmware", "uefi", "is not valid"),
    ],
)
def test_bad_values(key: str, value: Any, message: str) -> None:
    text = rendered({key: value})
    assert f"builders[0].{key}" in text
    assert message in text


def test_problems_can_go_to_a_plain_list() -> None:
    found: list[Problem] = []
    validate_bootstrap(BootstrapConfig(suite="jessie"), found, "builders[1]", "t.pkr.hcl")
    assert [(p.file, p.key) for p in found] == [("t.pkr.hcl", "builders[1].suite")]
