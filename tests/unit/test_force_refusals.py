"""-force never deletes /, the working directory, one of its parents or the home directory.

The check runs before anything is deleted and before the build's inputs are looked at, so it is tested
here on the paths themselves: a test that ran a whole build with `output_directory = "/"` would, if the
check were broken, delete the root filesystem.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from vmbake.errors import StepError
from vmbake.state import BuildContext
from vmbake.steps.prepare_output_dir import _refuse_precious

NO_CONTEXT = cast(BuildContext, None)  # never reached: these paths are refused before the inputs are read


@pytest.mark.parametrize(
    "path",
    [Path("/"), Path("/."), Path("/tmp/.."), Path.home(), Path("."), Path(".."), Path.cwd().parent.parent],
    ids=["root", "root-dot", "root-by-dotdot", "home", "cwd", "parent", "grandparent"],
)
def test_force_refuses_precious_directories(path: Path) -> None:
    with pytest.raises(StepError, match="refusing to delete") as raised:
        _refuse_precious("StepPrepareOutputDir", NO_CONTEXT, path)
    assert "set output_directory to a directory of its own" in (raised.value.hint or "")
