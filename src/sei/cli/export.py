"""``sei export``: share a trained network in another tool's format.

``--format bioimageio`` (the one format for now) writes a BioImage Model Zoo package: a zip that Fiji
(deepImageJ), ilastik and bioimageio.core run, with the network as TorchScript and as a state dict with its
source, preprocessing that takes the data in their own units (the run's intensity map) and postprocessing that gives
them back, a test input cropped from the run's measurements with the output sei computes from it, a README that
describes the measurements, the training and the paper to cite, and a cover. ``sei restore --weights OUT.zip``
reads the package back. Needs the bioimageio extra (pip install 'sei[bioimageio]').
"""

from __future__ import annotations

import argparse

from sei.cli.options import add_overwrite_option

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei export runs/cells cells.zip --author "Ada Lovelace"
  sei export runs/cells cells.zip --author "Ada Lovelace" --author "Alan Turing" --license MIT
  bioimageio test cells.zip                                 # the zoo's own check (bioimageio.core)
  sei restore stack.tif restored.tif --weights cells.zip     # sei reads the package back
"""


def add_parser(subparsers) -> None:
    from sei.core.defaults import DEFAULT_LICENSE
    from sei.export import EXPORT_FORMATS

    parser = subparsers.add_parser("export", help="export a trained network (BioImage Model Zoo package)",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_folder", metavar="RUN", help="a finished training run's folder (sei train --out-dir)")
    parser.add_argument("output", help="the package to write, a .zip file")
    parser.add_argument("--format", choices=tuple(EXPORT_FORMATS), default="bioimageio",
                        help="the package's format (default bioimageio: the BioImage Model Zoo's)")
    parser.add_argument("--author", action="append", required=True, metavar="NAME",
                        help="who trained the network, as the package names its authors (required; repeat it for "
                             "each author)")
    parser.add_argument("--license", default=DEFAULT_LICENSE, metavar="SPDX",
                        help=f"licence of the weights, an SPDX identifier (default {DEFAULT_LICENSE}: attribution "
                             "required; e.g. MIT, CC0-1.0)")
    parser.add_argument("--name", help="the model's name (default: SEI deblurring RUN_FOLDER_NAME); letters, digits, "
                                       "spaces and _+-()")
    add_overwrite_option(parser)
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sei.export.bioimageio import export_bioimageio

    result = export_bioimageio(args.run_folder, args.output, args.author, license=args.license, name=args.name,
                               overwrite=args.overwrite)
    print(f"wrote {result.path}: a BioImage Model Zoo package (model format {result.format_version}; weights "
          f"{' and '.join(result.weights)})")
    print(f"test input: {result.test_input}, shape {tuple(result.input_shape)}; check it with `bioimageio test "
          f"{result.path}`")
    return 0
