"""``python -m sei``: the same command line as ``sei``."""

from sei.cli import console

raise SystemExit(console())
