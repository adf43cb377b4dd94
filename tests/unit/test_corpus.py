"""The corpus of minimal Packer templates: vmbake's verdict is Packer's.

Every template under tests/data/corpus/accept must validate (exit 0); every one under refuse must be refused
(exit 1) with vmbake's own message, never a traceback. A template is a .json or .pkr.hcl file, or a
directory of .pkr.hcl files. Its leading comment (a top-level "_comment" string in JSON, leading '#' or '//'
lines in HCL, a top-level "//" string in a .pkr.json file) says what it covers and which Packer source or
page decides the verdict, and may hold:

- ``vmbake-args: ARGS``: flags for validate (-only, -except, -var, -var-file), split as a shell would;
- ``packer-1.6.6: judge``: an HCL2 template that Debian's packer 1.6.6 can judge as well;
- ``packer-1.6.6: skip REASON``: a JSON template whose verdict in current Packer differs from 1.6.6's.

Relative paths in the templates are taken from the corpus directory (the tests run there, as Packer takes
them from the current directory), and the templates share the small files in its files/ directory.

The second half runs Debian's packer 1.6.6 beside vmbake on every JSON template (and the HCL2 ones marked
judge) and checks that both give the verdict of the template's directory. It runs only where packer 1.6.6 is
installed (scripts/install-deps.sh installs it); it needs no network: qemu templates are only parsed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from vmbake.cli import main

CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"
VERDICTS = ("accept", "refuse")
PACKER_VERSION = "1.6.6"
# Words that mean vmbake broke instead of judging the template.
CRASH_MARKS = ("Traceback", "internal error")


@dataclass(frozen=True)
class CorpusTemplate:
    path: Path  # a file, or a directory of .pkr.hcl files
    verdict: str  # "accept" or "refuse"
    comment: tuple[str, ...]

    @property
    def rel(self) -> str:
        return self.path.relative_to(CORPUS).as_posix()

    @property
    def is_json(self) -> bool:
        """A JSON template (a .pkr.json file is HCL2 in JSON syntax)."""
        return self.path.suffix == ".json" and not self.path.name.endswith(".pkr.json")

    def marker(self, name: str) -> str | None:
        """The text after 'name:' on a comment line, or None."""
        for line in self.comment:
            match = re.match(rf"\s*{re.escape(name)}:\s*(.*)$", line)
            if match:
                return match.group(1).strip()
        return None

    @property
    def args(self) -> list[str]:
        return shlex.split(self.marker("vmbake-args") or "")

    @property
    def packer_judges(self) -> bool:
        mark = self.marker(f"packer-{PACKER_VERSION}") or ""
        if self.is_json:
            return not mark.startswith("skip")
        return mark == "judge"


def _json_comment(text: str) -> tuple[str, ...]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:  # a refused syntax error: read the comment string by hand
        match = re.search(r'"_comment"\s*:\s*("(?:[^"\\]|\\.)*")', text)
        return tuple(json.loads(match.group(1)).splitlines()) if match else ()
    if not isinstance(data, dict):
        return ()
    # "_comment", then "_comment2", ...: every top-level key starting with _comment, in order
    comments = [v for k, v in data.items() if k.startswith("_comment") and isinstance(v, str)]
    return tuple(line for comment in comments for line in comment.splitlines())


def _hcl_comment(text: str) -> tuple[str, ...]:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") or stripped.startswith("//"):
            lines.append(stripped.lstrip("#/").strip())
        elif stripped:
            break
    return tuple(lines)


def _pkr_json_comment(text: str) -> tuple[str, ...]:
    """The top-level "//" string of a .pkr.json file (HCL's JSON syntax comment), with \n between lines."""
    match = re.search(r'"//"\s*:\s*("(?:[^"\\]|\\.)*")', text)
    return tuple(json.loads(match.group(1)).splitlines()) if match else ()


def _load(path: Path, verdict: str) -> CorpusTemplate:
    if path.is_dir():
        files = sorted(path.glob("*.pkr.hcl"))
        comment = _hcl_comment(files[0].read_text()) if files else ()
    elif path.name.endswith(".pkr.json"):
        comment = _pkr_json_comment(path.read_text())
    elif path.suffix == ".json":
        comment = _json_comment(path.read_text())
    else:
        comment = _hcl_comment(path.read_text())
    return CorpusTemplate(path, verdict, comment)


@cache
def corpus() -> tuple[CorpusTemplate, ...]:
    found = []
    for verdict in VERDICTS:
        for path in sorted((CORPUS / verdict).iterdir()):
            if path.is_dir() or path.name.endswith((".json", ".pkr.hcl")):
                found.append(_load(path, verdict))
    return tuple(found)


def _ids(templates: tuple[CorpusTemplate, ...]) -> list[str]:
    return [t.rel for t in templates]


def _run_vmbake(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """vmbake's command line in this process (fast), from the corpus directory."""
    monkeypatch.chdir(CORPUS)
    for name in ("PACKER_LOG", "VMBAKE_LOG"):
        monkeypatch.delenv(name, raising=False)
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _assert_no_crash(template: CorpusTemplate, output: str) -> None:
    for mark in CRASH_MARKS:
        assert mark not in output, f"{template.rel}: vmbake crashed instead of judging it:\n{output}"


def test_the_corpus_has_both_verdicts_and_every_template_says_what_it_covers() -> None:
    templates = corpus()
    assert {t.verdict for t in templates} == set(VERDICTS)
    for template in templates:
        assert template.comment, f"{template.rel}: no leading comment naming its construct and Packer source"
        mark = template.marker(f"packer-{PACKER_VERSION}")
        if mark is not None:
            assert mark == "judge" or re.match(r"skip \S", mark), (
                f"{template.rel}: 'packer-{PACKER_VERSION}:' takes 'judge' or 'skip REASON', got {mark!r}"
            )
            assert template.is_json == mark.startswith("skip"), (
                f"{template.rel}: JSON templates are judged unless skipped, HCL2 ones only when marked judge"
            )


@pytest.mark.parametrize("template", corpus(), ids=_ids(corpus()))
def test_vmbake_gives_packers_verdict(
    template: CorpusTemplate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = _run_vmbake(["validate", *template.args, template.rel], monkeypatch, capsys)
    _assert_no_crash(template, output)
    if template.verdict == "accept":
        assert code == 0, f"{template.rel}: Packer accepts it, vmbake refused it:\n{output}"
    else:
        assert code == 1, f"{template.rel}: Packer refuses it, vmbake exited {code}:\n{output}"
        assert "Error" in output, f"{template.rel}: refused without an error message:\n{output}"


@pytest.mark.parametrize("template", corpus(), ids=_ids(corpus()))
def test_no_traceback_with_a_selection_or_inspect(
    template: CorpusTemplate, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the selection, vmbake judges the template or says why not: it never breaks."""
    rest = [a for a in template.args if not a.startswith(("-only", "-except"))]
    for argv in (
        ["validate", "-except=corpus-no-such-build", *rest, template.rel],
        ["validate", "-only=corpus-no-such-build", *rest, template.rel],
        ["inspect", *rest, template.rel],
    ):
        code, output = _run_vmbake(argv, monkeypatch, capsys)
        _assert_no_crash(template, output)
        assert code in (0, 1), f"{' '.join(argv)} exited {code}:\n{output}"


@cache
def _packer_version() -> str | None:
    if shutil.which("packer") is None:
        return None
    out = subprocess.run(["packer", "version"], capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Packer v(\S+)", out.stdout)
    return match.group(1) if match else None


def _packer_judged() -> tuple[CorpusTemplate, ...]:
    return tuple(t for t in corpus() if t.packer_judges)


@dataclass(frozen=True)
class PackerVerdict:
    code: int
    output: str


@pytest.fixture(scope="session")
def packer_verdicts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, PackerVerdict]:
    """packer validate on every judged template, a few at a time (each takes a moment to start)."""
    base = tmp_path_factory.mktemp("packer")
    (base / "home").mkdir()
    # A throw-away home and cache, and no call home: packer validate then reads nothing of the machine's.
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(base / "home"),
        "PACKER_CACHE_DIR": str(base / "cache"),
        "TMPDIR": str(base),
        "CHECKPOINT_DISABLE": "1",
    }
    verdicts: dict[str, PackerVerdict] = {}
    judged = list(_packer_judged())
    for start in range(0, len(judged), 8):
        batch = judged[start : start + 8]
        running = [
            subprocess.Popen(
                ["packer", "validate", *t.args, t.rel],
                cwd=CORPUS,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for t in batch
        ]
        for template, proc in zip(batch, running, strict=True):
            try:
                output, _ = proc.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                output, _ = proc.communicate()
                output += "\n(timed out)"
            verdicts[template.rel] = PackerVerdict(proc.returncode, output)
    return verdicts


@pytest.mark.skipif(
    _packer_version() != PACKER_VERSION,
    reason=f"needs Debian's packer {PACKER_VERSION} (scripts/install-deps.sh installs it)",
)
@pytest.mark.parametrize("template", _packer_judged(), ids=_ids(_packer_judged()))
def test_packer_1_6_6_gives_the_same_verdict(
    template: CorpusTemplate,
    packer_verdicts: dict[str, PackerVerdict],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    packer = packer_verdicts[template.rel]
    code, output = _run_vmbake(["validate", *template.args, template.rel], monkeypatch, capsys)
    packer_says = "accept" if packer.code == 0 else "refuse"
    vmbake_says = "accept" if code == 0 else "refuse"
    assert (packer_says, vmbake_says) == (template.verdict, template.verdict), (
        f"{template.rel}: expected {template.verdict}; packer {PACKER_VERSION} says {packer_says}, "
        f"vmbake says {vmbake_says}\n--- packer:\n{packer.output}\n--- vmbake:\n{output}"
    )


def test_the_compatibility_page_names_only_corpus_templates_that_exist() -> None:
    page = (CORPUS.parents[2] / "docs" / "compatibility.md").read_text()
    named = set(re.findall(r"`((?:accept|refuse)/[\w.-]+)`", page))
    assert named, "docs/compatibility.md names no corpus template"
    missing = sorted(name for name in named if not (CORPUS / name).exists())
    assert not missing, f"docs/compatibility.md names corpus templates that do not exist: {missing}"
