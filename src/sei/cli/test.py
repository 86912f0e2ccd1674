"""``sei test``: evaluate a network or a baseline with the paper's protocol on a dataset or folder of clean images."""

from __future__ import annotations

import argparse

from sei.cli.options import (
    _positive_int, add_data_options, add_device_option, add_overwrite_option, add_physics_options,
    add_reconstructor_options, baseline_options, option, overrides, physics_spec,
)

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei test --weights runs/sample_deblurring_Gaussian_R2_noise5_sei        # a run folder: its settings are reused
  sei test --weights Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI --dataset div2k --download
  sei test --model-kind wiener --kernel Box_R3 --dataset sample
  sei test --model-kind bicubic --task sr --sr-factor 2 --dataset my_clean_images/ --save-images
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("test", help="evaluate a network or a baseline (PSNR, SSIM, LPIPS)",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_reconstructor_options(parser)
    option(parser, "--model", dest="model.backbone", help="backbone, for weights files without an architecture record")
    add_physics_options(parser, use="simulate")
    add_data_options(parser)
    parser.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default %(default)s)")
    parser.add_argument("--max-images", type=_positive_int, help="evaluate only the first N images")
    parser.add_argument("--out-dir", "--out_dir", help="where to write metrics.csv, summary.json and images")
    parser.add_argument("--save-images", action="store_true", help="write inputs, estimates and references")
    parser.add_argument("--label", help="name of this evaluation in tables and reports")
    add_overwrite_option(parser)
    lpips = parser.add_mutually_exclusive_group()
    lpips.add_argument("--lpips", dest="lpips", action="store_const", const=True, default=None,
                       help="compute LPIPS (fails if its AlexNet weights are not available)")
    lpips.add_argument("--no-lpips", dest="lpips", action="store_const", const=False, help="skip LPIPS")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true", help="stop on an unreadable image instead of skipping it")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sei.inference.evaluation import format_table, run_test

    download = bool(getattr(args, "data.download", False))
    settings = {k: v for k, v in overrides(args).items() if not k.startswith("physics.")}
    result = run_test(args.model_kind, args.weights, physics_spec(args), settings, split=args.split,
                      max_images=args.max_images, out_dir=args.out_dir, save_images=args.save_images,
                      label=args.label, lpips=args.lpips, ensemble=args.ensemble, precision=args.precision,
                      baseline_options=baseline_options(args, download, not args.quiet), progress=not args.quiet,
                      strict=args.strict, overwrite=args.overwrite)
    for note in result.notes:
        print(note)
    print(result.describe())
    print(format_table([(result.label, result.evaluation.summary)]))
    print(f"wrote {result.metrics_path} and {result.summary_path}")
    return 0
