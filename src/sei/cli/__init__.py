"""The ``sei`` command line: one module per subcommand, each with ``add_parser`` and ``run``."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import NoReturn

from sei import __version__

__all__ = ["COMMANDS", "OneLineErrorParser", "build_parser", "console", "main"]

# subcommand -> module under sei.cli; modules are imported only when their command runs (or for --help)
COMMANDS = {
    "demo": "sei.cli.demo",
    "train": "sei.cli.train",
    "test": "sei.cli.test",
    "restore": "sei.cli.restore",
    "degrade": "sei.cli.degrade",
    "psf": "sei.cli.psf",
    "report": "sei.cli.report",
    "score": "sei.cli.score",
    "export": "sei.cli.export",
    "weights": "sei.cli.weights",
    "info": "sei.cli.info",
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, with its errors on one line (``sei train: error: ... (sei train --help for usage)``) instead of
    the whole usage block before them; subcommands' parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} ({self.prog} --help for usage)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="sei",
        description="Scale-Equivariant Imaging: train deblurring and super-resolution networks from measurements alone.",
    )
    parser.add_argument("--version", action="version", version=f"sei {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (errors are otherwise one line)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        module.add_parser(subparsers)
        # a command's own parser reports what it did not recognise (``sei train: error: ...``)
        subparsers.choices[name].set_defaults(command_parser=subparsers.choices[name])
    return parser


def _warning_printer(command: str, others: Callable[..., None]) -> Callable[..., None]:
    """``warnings.showwarning`` that prints sei's own warnings as one line (``sei train: warning: ...``) and
    leaves the others to ``others``."""
    from sei.core.errors import SEIWarning, one_line

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        if issubclass(category, SEIWarning):
            print(f"sei {command}: warning: {one_line(message)}", file=file or sys.stderr)
        else:
            others(message, category, filename, lineno, file, line)

    return show


def _silence_stdout() -> None:
    """Point standard output at the null device, so that flushing it at exit does not fail again."""
    import io
    import os

    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):  # replaced by a non-file object
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, descriptor)
    os.close(null)


def console() -> int:
    """The ``sei`` console script (and ``python -m sei``): :func:`main` in a process whose glibc allocator lets
    freed tensors merge (:func:`sei.core.memory.restart_with_coalescing`; it restarts the process once, before
    anything runs, and halved the memory of a checkpointed SwinIR step)."""
    from sei.core.memory import restart_with_coalescing

    restart_with_coalescing([sys.executable, "-m", "sei", *sys.argv[1:]])
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sei`` console script; returns the exit status.

    A user error (:class:`~sei.core.errors.SEIError`, or a file system error such as a missing permission) prints one
    line and gives exit status 2; any other exception is a bug and shows its traceback. ``sei --debug COMMAND``
    shows the traceback of user errors too.
    """
    from sei.core.errors import USER_ERRORS, is_note, one_line

    parser = build_parser()
    args, unrecognised = parser.parse_known_args(argv)
    if unrecognised:
        getattr(args, "command_parser", parser).error(f"unrecognized arguments: {' '.join(unrecognised)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        with warnings.catch_warnings():  # the previous way of showing warnings comes back when the command ends
            warnings.showwarning = _warning_printer(args.command, warnings.showwarning)
            return int(args.run(args) or 0)
    except BrokenPipeError:  # the reader stopped early (``sei info | head``): not an error of this command
        _silence_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a command that a closed pipe stopped
    except USER_ERRORS as error:
        if args.debug:
            raise
        if is_note(error):  # nothing to do (e.g. resuming a finished run): a note, not an error
            print(f"sei {args.command}: {one_line(error)}")
            return 0
        print(f"sei {args.command}: error: {one_line(error)}", file=sys.stderr)
        return getattr(error, "exit_code", 2)
    except KeyboardInterrupt:
        print(f"sei {args.command}: interrupted", file=sys.stderr)
        return 130
