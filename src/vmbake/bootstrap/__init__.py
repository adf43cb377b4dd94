"""The debian-bootstrap builder's library: mmdebstrap argv and hooks, the .deb cache, and the disk layout.

Pure functions (argv, scripts, layout, fstab) are kept apart from the functions that run tools, so the
former are tested against exact values and the latter against real files.
"""
