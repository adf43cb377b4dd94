"""Write GitLab's child pipeline for `vmbake matrix` output: one job per matrix entry (stdout, JSON)."""

import json
import sys

JOB = {
    "stage": "bake",
    # Runners with /dev/kvm passed in (docker executor: devices = ["/dev/kvm"]) and privileged for loop devices.
    "tags": ["kvm"],
    "image": "debian:trixie",
    "timeout": "90m",
    "services": [
        # The shared package cache; give its cache directory a host volume in the runner's configuration
        # (volumes = ["/srv/apt-cacher-ng:/var/cache/apt-cacher-ng"]) so every job on the host shares it.
        {"name": "sameersbn/apt-cacher-ng:3.7.4-20220421", "alias": "apt-cacher"}
    ],
    "variables": {"APT_PROXY": "http://apt-cacher:3142"},
}


def child_pipeline(entries: list[dict[str, str]]) -> dict[str, object]:
    pipeline: dict[str, object] = {"stages": ["bake"]}
    for entry in entries:
        out = entry["output_directory"]
        pipeline[entry["name"]] = {
            **JOB,
            "variables": {
                **JOB["variables"],
                "VMBAKE_TEMPLATE": entry["template"],
                "VMBAKE_BUILD": entry["build"],
            },
            "script": [
                "scripts/install-deps.sh && scripts/setup.sh",
                'vmbake build -force -color=false -only="$VMBAKE_BUILD" "$VMBAKE_TEMPLATE"',
                f"cd {out} && sha256sum -- * > SHA256SUMS && cat SHA256SUMS",
            ],
            # The image, its checksum and its report.
            "artifacts": {"name": entry["name"], "paths": [out], "expire_in": "1 week"},
        }
    return pipeline


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as f:
        json.dump(child_pipeline(json.load(f)), sys.stdout, indent=2)
        print()
