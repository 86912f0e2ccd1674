"""``python -m sei``: the same command line as ``sei``."""

from sei.cli import main

raise SystemExit(main())
