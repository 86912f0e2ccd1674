"""``sei score``: PSNR and SSIM of your own restorations against your own reference images.

Files are paired by name (the same name without its extension in both folders), or give two files. Scores are
computed in each file's own units (16-bit counts stay counts; no conversion to 8 bits) with a stated data range:
by default each reference's own range (max - min), so 16-bit data with values 100..3000 get a peak of 2900, not
65535. The table is printed, and scores.csv and scores.json are written (sei report shows them).
"""

from __future__ import annotations

import argparse
import math

from sei.cli.options import _non_negative_int, _named, add_max_pixels_option, add_overwrite_option

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei score restored/ sharp/                      # each reference's own range as peak
  sei score restored/ sharp/ --data-range dtype   # 255 for 8-bit, 65535 for 16-bit references
  sei score restored/ sharp/ --data-range 4095 --border 8 --out scores/
  sei score restored/cell.tif sharp/cell.tif
"""


@_named("data range (reference, dtype or a number > 0)")
def _data_range(text: str) -> str | float:
    if text.lower() in ("reference", "dtype"):
        return text.lower()
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected reference, dtype or a number > 0, got {text}")
    return value


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("score", help="score your own restorations against reference images (PSNR, SSIM)",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("estimates", help="a folder of restored images, or one image file")
    parser.add_argument("references", help="a folder of reference images (same names), or one image file")
    parser.add_argument("--data-range", type=_data_range, default="reference",
                        help="the PSNR peak and SSIM's L: reference (default: each reference's own max - min), dtype "
                             "(the reference's integer dtype's full range: 255, 65535; not for float data) or a "
                             "number in the files' units")
    parser.add_argument("--border", type=_non_negative_int, default=0,
                        help="pixels left out on each side of every image before scoring (default 0)")
    parser.add_argument("--out", help="folder for scores.csv and scores.json (default: ESTIMATES-scores beside "
                                      "ESTIMATES)")
    add_max_pixels_option(parser)
    add_overwrite_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import sys

    from sei.inference.scoring import format_scores, run_score

    result = run_score(args.estimates, args.references, args.out, args.data_range, args.border,
                       getattr(args, "data.max_pixels", None), args.overwrite, progress=not args.quiet)
    print(format_scores(result))
    print(f"wrote {result.csv_path} and {result.json_path}")
    for row in result.failed:
        print(f"  failed: {row.name}: {row.error}", file=sys.stderr)
    return 1 if result.failed else 0
