"""The image report: facts gathered in the guest (collect), then report.json, report.html and a summary.

`collect` runs a few read-only commands over the communicator before the guest shuts down; `render` turns
those facts, plus the artifact's sizes, into a JSON file, a static HTML page with plain SVG charts, and the
few lines printed at the end of a build.
"""
