"""``sei report``: one self-contained HTML page for training runs and evaluations."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run_command"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("report", help="render runs and evaluations as an HTML page",
                                   description=__doc__)
    parser.add_argument("paths", nargs="+", metavar="DIR", help="training run or evaluation folders (searched 3 deep)")
    parser.add_argument("--out", default="report.html", help="output HTML file (default report.html)")
    parser.add_argument("--title", default="SEI report", help="page title")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sei.report import write_report

    path = write_report(args.paths, args.out, args.title)
    print(f"wrote {path}")
    return 0
