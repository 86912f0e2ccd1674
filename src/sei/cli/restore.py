"""``sei restore``: restore your own blurry or low-resolution images with a trained network or a baseline.

Images keep their names and come back in their own dtype and units: 8-bit as 8-bit, 16-bit as 16-bit on the same
scale, float TIFFs as float TIFFs (negative or large values kept), multi-page TIFF stacks as stacks; TIFF stays
TIFF and the rest is written as PNG (``--format``, ``--bits`` override). 16-bit and float data reach the network
through a recorded affine map (``intensity.json`` next to the outputs; see sei.io.intensity). Grayscale, RGB and
RGBA inputs are handled (alpha is carried over); networks restore any size in bounded memory by overlapping tiles; a file that cannot be read is
reported without stopping the others. Networks carry the operator they were trained for in their weights;
baselines (``--model-kind wiener`` ...) take it from the options (``--task``, ``--kernel``, ``--sr-factor``,
``--noise-level``) or from the ``degradation.yaml`` of the input folder, and process whole images.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sei.cli.options import (
    _non_negative_int, add_device_option, add_max_pixels_option, add_overwrite_option, add_physics_options,
    add_reconstructor_options, baseline_options, physics_spec,
)

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei restore photos/ restored/ --weights runs/my_run
  sei restore scan.tif scan_restored.png --weights Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI --tile 256
  sei restore stack.tif restored/ --weights runs/cells      # 16-bit stack in, 16-bit stack out, same scale
  sei restore blurry/ wiener/ --model-kind wiener --kernel psf.npy --noise-level 3
  sei restore blurry/ tv/ --model-kind tv                   # blurry/degradation.yaml (from sei degrade) says how
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("restore", help="restore a folder (or file) of your own images",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file or a folder of images")
    parser.add_argument("output", help="output folder (or file name for a single input file)")
    add_reconstructor_options(parser, auto_precision=True, auto_ensemble=True)
    parser.add_argument("--model", help="backbone, for weights files without an architecture record")
    add_physics_options(parser, use="restore")  # baselines need them; networks carry their task in their weights
    parser.add_argument("--download", action="store_true", help="download published weights if not cached")
    parser.add_argument("--tile", type=_non_negative_int, default=512,
                        help="tile size in input pixels for large images (default 512; 0: whole images)")
    parser.add_argument("--overlap", type=_non_negative_int, default=32, help="overlap between tiles in pixels (default 32)")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=None,
                        help="write 8 or 16 bits of the network's [0, 1] (default: the input's own dtype and units)")
    parser.add_argument("--format", choices=("png", "tif"), default=None,
                        help="output format (default: TIFF inputs stay TIFF, the others become PNG; float data and "
                             "stacks need TIFF)")
    add_max_pixels_option(parser)
    add_overwrite_option(parser)
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import sys

    from sei.core.errors import ImageError
    from sei.inference.restoration import restore

    result = restore(args.input, args.output, args.model_kind, args.weights, physics_spec(args), backbone=args.model,
                     baseline_options=baseline_options(args, args.download, not args.quiet), tile=args.tile,
                     overlap=args.overlap, ensemble=args.ensemble, precision=args.precision, bits=args.bits,
                     suffix=args.format, device=getattr(args, "train.device", "auto"), download=args.download,
                     progress=not args.quiet, overwrite=args.overwrite,
                     max_pixels=getattr(args, "data.max_pixels", None))
    if result.physics is not None:
        print(f"operator: {result.physics.describe()} (from {result.origin})")
    if result.noise_estimate:
        print(result.noise_estimate)
    if result.ensemble > 1:
        print(f"ensemble: each image restored {result.ensemble} times, flipped and rotated, and averaged"
              f"{'' if args.ensemble else ' (the default; --no-ensemble for one pass)'}")
    if result.precision_reason:
        print(f"precision: {result.precision} ({result.precision_reason}; --precision 32-true or bf16-mixed to "
              "choose)")
    report = result.report
    print(report.summary("restored", len(result.pairs), Path(args.output)))
    for record in result.records:
        print(f"intensity maps (data units <-> the network's [0, 1]) recorded in {record}")
    if report.failed and not report.written:
        raise ImageError(f"no image could be restored ({report.failures()})")
    for path, reason in report.failed:
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return 1 if report.failed else 0
