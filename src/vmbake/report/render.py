"""The report's outputs: <vm_name>.report.json, <vm_name>.report.html (static, plain SVG charts), a summary.

The HTML page needs no script and no network: tables, plus two horizontal bar charts drawn here as SVG
(size by package, size by top-level directory), so it opens the same in any browser or archive viewer.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmbake.report.collect import Directory, ImageFacts, Package
from vmbake.units import format_size

CHART_WIDTH = 760
BAR_HEIGHT = 18
BAR_GAP = 6
LABEL_WIDTH = 250
VALUE_WIDTH = 90
SUMMARY_PACKAGES = 10
CHART_ROWS = 15


@dataclass(frozen=True)
class ArtifactInfo:
    """The finished disk image: its file size and its virtual size (qemu-img info)."""

    path: str
    format: str
    file_bytes: int
    virtual_bytes: int

    def ratio_to(self, data_bytes: int) -> float:
        """How many bytes of `data_bytes` each byte of the file holds (0 when unknown)."""
        return round(data_bytes / self.file_bytes, 2) if self.file_bytes and data_bytes else 0.0


def report_paths(output_dir: Path, vm_name: str) -> tuple[Path, Path]:
    return output_dir / f"{vm_name}.report.json", output_dir / f"{vm_name}.report.html"


def report_data(name: str, facts: ImageFacts, artifact: ArtifactInfo | None) -> dict[str, Any]:
    data: dict[str, Any] = {"build": name, **facts.to_json()}
    if artifact is not None:
        data["artifact"] = {
            **asdict(artifact),
            "virtual_ratio": artifact.ratio_to(artifact.virtual_bytes),
            "compression_ratio": artifact.ratio_to(facts.used_bytes),
        }
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def summary_lines(
    facts: ImageFacts, artifact: ArtifactInfo | None, count: int = SUMMARY_PACKAGES
) -> list[str]:
    """The few lines printed at the end of a build."""
    lines: list[str] = []
    if artifact is not None:
        lines.append(
            f"Artifact: {format_size(artifact.file_bytes)} ({artifact.format}), virtual size "
            f"{format_size(artifact.virtual_bytes)}, compression ratio "
            f"{artifact.ratio_to(facts.used_bytes):.2f}:1 "
            f"({format_size(facts.used_bytes)} of files in the guest)"
        )
    lines.append(
        f"Guest: {facts.os or 'unknown OS'}, kernel {facts.kernel or '?'}, {len(facts.packages)} packages "
        f"({format_size(facts.packages_bytes)}), system {facts.system_state or '?'}"
    )
    if facts.failed_units:
        lines.append("Failed units: " + ", ".join(facts.failed_units))
    biggest = facts.biggest_packages(count)
    if biggest:
        width = max(len(p.name) for p in biggest)
        lines.append(f"The {len(biggest)} biggest packages:")
        lines += [f"  {p.name.ljust(width)}  {format_size(p.installed_bytes):>10}" for p in biggest]
    return lines


def bar_chart(title: str, rows: list[tuple[str, int]], css_class: str) -> str:
    """A horizontal bar chart as an inline SVG element (label, bar, value per row)."""
    top = 28
    height = top + len(rows) * (BAR_HEIGHT + BAR_GAP) + 8
    scale_width = CHART_WIDTH - LABEL_WIDTH - VALUE_WIDTH
    biggest = max((value for _, value in rows), default=0) or 1
    parts = [
        f'<svg class="chart {css_class}" xmlns="http://www.w3.org/2000/svg" width="{CHART_WIDTH}" '
        f'height="{height}" viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{html.escape(title)}">',
        f"<title>{html.escape(title)}</title>",
        f'<text x="0" y="18" class="chart-title">{html.escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = top + i * (BAR_HEIGHT + BAR_GAP)
        width = max(1, round(scale_width * value / biggest))
        shown = label if len(label) <= 34 else label[:31] + "..."
        parts += [
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR_HEIGHT - 5}" text-anchor="end">{html.escape(shown)}</text>',
            f'<rect x="{LABEL_WIDTH}" y="{y}" width="{width}" height="{BAR_HEIGHT}" class="bar">'
            f"<title>{html.escape(label)}: {format_size(value)}</title></rect>",
            f'<text x="{LABEL_WIDTH + width + 6}" y="{y + BAR_HEIGHT - 5}">{format_size(value)}</text>',
        ]
    parts.append("</svg>")
    return "\n".join(parts)


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{html.escape(c)}</td>' if i in numeric else f"<td>{html.escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{''.join(body)}</tbody></table>"


_CSS = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 60em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
svg.chart text { font-size: 12px; fill: #222; } svg.chart .chart-title { font-size: 14px; font-weight: bold; }
svg.chart rect.bar { fill: #3b78b5; } svg.directories rect.bar { fill: #5a9e5a; }
.bad { color: #b00; font-weight: bold; }
"""


def render_html(name: str, facts: ImageFacts, artifact: ArtifactInfo | None) -> str:
    """The whole static page."""
    overview: list[list[str]] = [["Build", name]]
    if artifact is not None:
        overview += [
            ["Artifact", artifact.path],
            ["File size", format_size(artifact.file_bytes)],
            ["Virtual size", format_size(artifact.virtual_bytes)],
            [
                "Compression ratio",
                f"{artifact.ratio_to(facts.used_bytes):.2f}:1 (files in the guest / file size)",
            ],
        ]
    overview += [
        ["Files in the guest", format_size(facts.used_bytes)],
        ["Operating system", facts.os],
        ["Kernel", facts.kernel],
        ["Packages", f"{len(facts.packages)} ({format_size(facts.packages_bytes)} installed)"],
        ["System state", facts.system_state],
        ["Failed units", ", ".join(facts.failed_units) or "none"],
        ["Collected at", facts.collected_at],
    ]
    package_rows: list[tuple[str, int]] = [(p.name, p.installed_bytes) for p in facts.packages[:CHART_ROWS]]
    top_dirs: list[Directory] = [d for d in facts.directories if d.depth == 1][:CHART_ROWS]
    sections = [
        f"<h1>Image report: {html.escape(name)}</h1>",
        _table(["", ""], overview, set()),
        "<h2>Charts</h2>",
        bar_chart(f"Size by package (the {len(package_rows)} biggest)", package_rows, "packages"),
        bar_chart("Size by top-level directory", [(d.path, d.bytes) for d in top_dirs], "directories"),
        "<h2>Filesystems</h2>",
        _table(
            ["Mount point", "Device", "Type", "Size", "Used (df)", "Files (du)", "Free"],
            [
                [
                    fs.mountpoint,
                    fs.source,
                    fs.fstype,
                    format_size(fs.size_bytes),
                    format_size(fs.used_bytes),
                    format_size(fs.du_bytes),
                    format_size(fs.avail_bytes),
                ]
                for fs in facts.filesystems
            ],
            {3, 4, 5, 6},
        ),
        "<h2>Largest directories</h2>",
        _table(["Directory", "Size"], [[d.path, format_size(d.bytes)] for d in facts.directories], {1}),
        f"<h2>Packages ({len(facts.packages)})</h2>",
        _table(
            ["Package", "Version", "Installed size"],
            [[p.name, p.version, format_size(p.installed_bytes)] for p in facts.packages],
            {2},
        ),
    ]
    if facts.failed_units:
        sections.insert(2, f'<p class="bad">Failed units: {html.escape(", ".join(facts.failed_units))}</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>Image report: {html.escape(name)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )


def write_report(
    output_dir: Path, vm_name: str, name: str, facts: ImageFacts, artifact: ArtifactInfo | None
) -> tuple[Path, Path]:
    """Write both files; returns (json path, html path)."""
    json_path, html_path = report_paths(output_dir, vm_name)
    write_json(json_path, report_data(name, facts, artifact))
    tmp = html_path.with_name(html_path.name + ".tmp")
    tmp.write_text(render_html(name, facts, artifact))
    tmp.replace(html_path)
    return json_path, html_path


def biggest_names(packages: list[Package], count: int = 5) -> str:
    return ", ".join(f"{p.name} ({format_size(p.installed_bytes)})" for p in packages[:count])
