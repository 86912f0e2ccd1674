"""``sei degrade``: simulate measurements (blur or down-sampling, plus noise) of clean images.

Build your own benchmarks: each image gets the measurement ``A x + e`` with noise seeded by (seed, image index),
written with the same name; ``degradation.yaml`` records the settings, so the measurements can be used with
``sei train --measurements`` and the clean images with ``sei test``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sei.cli.options import _resize, add_physics_options, physics_from_args, physics_settings

EPILOG = """examples:
  sei degrade clean/ blurry/ --kernel Gaussian_R2 --noise-level 5
  sei degrade clean/ low_res/ --task sr --sr-factor 4 --bits 16
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("degrade", help="simulate measurements of clean images",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", help="an image file or a folder of clean images")
    parser.add_argument("output", help="output folder")
    add_physics_options(parser)
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--resize", type=_resize, help="resize clean images to this shorter side first")
    parser.add_argument("--bits", type=int, choices=(8, 16), default=8, help="bit depth of the output (8 or 16)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    import sys

    import torch
    import yaml
    from tqdm.auto import tqdm

    from sei.data.preprocess import resize_shorter_side
    from sei.errors import SEIError
    from sei.files import atomic_write_text
    from sei.io import read_image, write_image
    from sei.restoration import output_paths
    from sei.rng import make_generator

    physics = physics_from_args(args)
    output = Path(args.output)
    pairs = output_paths(Path(args.input), output, "png")
    written, failed = 0, []
    for index, (source, target) in enumerate(tqdm(pairs, desc="degrading", unit="image", disable=args.quiet)):
        try:
            image = read_image(source)
            if args.resize:
                image = resize_shorter_side(image, args.resize)
            r = physics.upscale
            image = image[:, : image.shape[1] - image.shape[1] % r, : image.shape[2] - image.shape[2] % r]
            with torch.no_grad():
                measurement = physics(image[None], generator=make_generator("measurement", args.seed, index))[0]
            write_image(target, measurement, bits=args.bits)
            written += 1
        except SEIError as error:
            failed.append((source, str(error)))
    settings = {**physics_settings(args), "sr_factor": physics.upscale if physics.upscale > 1 else None,
                "seed": args.seed, "resize": args.resize, "bits": args.bits, "images": written}
    target_dir = output if output.suffix == "" else output.parent
    atomic_write_text(target_dir / "degradation.yaml", yaml.safe_dump(settings, sort_keys=False))
    print(f"wrote {written} measurement(s) to {target_dir}")
    for source, reason in failed:
        print(f"  failed: {source}: {reason}", file=sys.stderr)
    return 1 if failed else 0
