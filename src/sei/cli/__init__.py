"""The ``sei`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sei import __version__

# subcommand -> module under sei.cli; modules are imported only when their command runs (or for --help)
COMMANDS = {
    "demo": "sei.cli.demo",
    "train": "sei.cli.train",
    "test": "sei.cli.test",
    "restore": "sei.cli.restore",
    "degrade": "sei.cli.degrade",
    "report": "sei.cli.report",
    "weights": "sei.cli.weights",
    "info": "sei.cli.info",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sei",
        description="Scale-Equivariant Imaging: train deblurring and super-resolution networks from measurements alone.",
    )
    parser.add_argument("--version", action="version", version=f"sei {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sei`` console script; returns the exit status."""
    from sei.errors import SEIError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except SEIError as error:
        print(f"sei {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"sei {args.command}: interrupted", file=sys.stderr)
        return 130
