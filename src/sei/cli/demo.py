"""``sei demo``: the main job. SEI on the embedded sample photographs, against the blurry input, TV, BM3D and
supervised training, and the network that ships with sei, as it is and fine-tuned on the blurry photographs.

Trains SEI and a supervised network with the same small backbone and budget (Gaussian_R2 deblurring, noise
level 5) on scikit-image's photographs, evaluates them, the classical restorers and the blurry input on held-out
photographs, prints the comparison and writes an HTML report. Each training says how long it will take before it
starts (measured on this machine); no network needed. ``--quick`` checks an installation in well under a minute.
"""

from __future__ import annotations

import argparse

from sei.cli.options import LazyHelp, _positive_int, add_device_option

__all__ = ["add_parser", "run_command"]


def _demo_steps() -> int:
    from sei.core.defaults import DEMO_STEPS  # sei.demo's, without importing torch

    return DEMO_STEPS


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="SEI vs supervised vs blurry input on the sample photographs",
                                   description=__doc__)
    parser.add_argument("--out-dir", default="runs/demo", help="output folder (default %(default)s)")
    parser.add_argument("--steps", type=_positive_int,
                        help=LazyHelp(lambda: f"training steps per method (default {_demo_steps()})"))
    parser.add_argument("--quick", action="store_true", help="a tiny network and budget, to check the installation")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sei.cli.train import quiet_lightning
    from sei.core.defaults import DEMO_PRETRAINED
    from sei.demo import run_demo
    from sei.inference.evaluation import format_table

    quiet_lightning()
    result = run_demo(args.out_dir, quick=args.quick, steps=args.steps,
                      device=getattr(args, "train.device", "auto"), progress=not args.quiet)
    print()
    print("Gaussian_R2 deblurring, noise level 5, sample photographs (validation split)")
    print(format_table([(label, summary) for label, summary in result.summaries.items()]))
    print(f"SEI vs blurry input: {result.sei_gain_over_input:+.2f} dB; "
          f"SEI vs {result.best_classical.upper()} (no training): {result.sei_gain_over_classical:+.2f} dB; "
          f"SEI vs supervised (same budget): {-result.sei_gap_to_supervised:+.2f} dB")
    print(f"the shipped network {DEMO_PRETRAINED}: {result.summaries['shipped']['psnr']:.2f} dB as it ships, "
          f"{result.finetuning_gain:+.2f} dB fine-tuned on the blurry photographs themselves")
    training = sum(v for k, v in result.seconds.items() if k.startswith("train_"))
    print(f"training {training:.0f} s, "
          f"evaluation {result.seconds['evaluate']:.0f} s")
    print(f"report: {result.report}")
    return 0
