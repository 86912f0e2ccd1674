"""``sei degrade``: simulate measurements (blur or down-sampling, plus noise) of clean images.

Build your own benchmarks: each image gets the measurement ``A x + e`` with noise seeded by (seed, image index),
written with the same name in its own dtype and units (16-bit stays 16-bit on the same scale, a float TIFF a float
TIFF, a stack a stack; TIFF stays TIFF, the rest becomes PNG); nothing that exists is replaced without
``--overwrite``; ``degradation.yaml`` records the settings, so the measurements can be used with
``sei train --measurements`` and the clean images with ``sei test``.
"""

from __future__ import annotations

import argparse

from sei.cli.options import _resize, add_max_pixels_option, add_overwrite_option, add_physics_options, physics_spec

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei degrade clean/ blurry/ --kernel Gaussian_R2 --noise-level 5
  sei degrade clean/ low_res/ --task sr --sr-factor 4 --bits 16
  sei degrade clean/ blurry/ --kernel psf.npy --noise-level 3      # psf.npy from `sei psf`
  sei degrade clean/ low_res/ --task sr --sr-factor 2 --kernel psf.npy   # blur by the PSF, then decimate
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("degrade", help="simulate measurements of clean images",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file or a folder of clean images")
    parser.add_argument("output", help="output folder")
    add_physics_options(parser, use="simulate")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default %(default)s)")
    parser.add_argument("--resize", type=_resize, help="resize clean images to this shorter side first")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=None,
                        help="write 8 or 16 bits of the network's [0, 1] (default: the input's own dtype and units: "
                             "16-bit stays 16-bit on the same scale, a float TIFF a float TIFF)")
    add_max_pixels_option(parser)
    add_overwrite_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import sys

    from sei.data.degradation import degrade
    from sei.io.outputs import INTENSITY_RECORD

    spec, report, folder = degrade(args.input, args.output, physics_spec(args), args.seed, args.resize, args.bits,
                                   progress=not args.quiet, overwrite=args.overwrite,
                                   max_pixels=getattr(args, "data.max_pixels", None))
    print(f"operator: {spec.describe()}")
    print(f"wrote {len(report.written)} measurement(s) and degradation.yaml to {folder}")
    if (folder / INTENSITY_RECORD).is_file():
        print(f"intensity maps (data units <-> the network's [0, 1]) recorded in {folder / INTENSITY_RECORD}")
    for source, reason in report.failed:
        print(f"  failed: {source}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0
