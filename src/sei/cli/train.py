"""``sei train``: train a restoration network with any method on any dataset, and resume it."""

from __future__ import annotations

import argparse
from pathlib import Path

from sei.cli.options import (
    _non_negative_int, _positive_int, add_data_options, add_device_option, add_physics_options, config_default, lazy,
    method_help, option, overrides, physics_given,
)
from sei.core.defaults import (BATCH_SIZE, CROP_SAMPLINGS, CROP_SIZE, SURE_DIVERGENCES, VOLUME_BATCH_SIZE,
                               VOLUME_CROP_SIZE, VOLUME_SCALE_AXES)

__all__ = ["EPILOG", "add_parser", "quiet_lightning", "run_command"]

EPILOG = """examples:
  sei train --dataset sample                                   # SEI, Gaussian_R2, the laptop demo budget
  sei train --method sei --task sr --sr-factor 2 --dataset div2k --download --device cuda
  sei train --config configs/div2k/deblurring_gaussian_r2_sei.yaml --device cuda --devices 4 --strategy ddp
  sei train --measurements my_blurry_images/ --kernel psf.npy --weights runs/x/weights.pt --steps 2000
  sei train --out-dir runs/x --resume                          # continue a run that was stopped
"""


def _duration(text: str) -> float:
    """argparse type of ``--time``: seconds of a duration (:func:`sei.core.units.parse_duration`)."""
    from sei.core.units import parse_duration

    try:
        return parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train a network (SEI, supervised, CSS, EI, SURE)",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML experiment file; other options override its values")
    option(parser, "--method", dest="loss.method", help=method_help())
    add_physics_options(parser)
    add_data_options(parser)
    option(parser, "--measurements", dest="measurements",
           help="train on a folder of measurements only (your own blurry or low-resolution images); the operator "
                "comes from --kernel/--task/--sr-factor, or from the folder's degradation.yaml")
    model = parser.add_argument_group("model")
    option(model, "--model", dest="model.backbone",
           help="backbone: swinir (the paper's; the default on a GPU), unet-small (the default on a CPU and on the "
                "sample and photos sets), unet-base, unrolled-small, ... (`sei info` lists them)")
    option(model, "--weights", dest="model.weights", help="initial weights (fine-tuning)")
    option(model, "--channels", dest="model.channels", type=int, choices=(1, 3),
           help="image channels of the network: 1 (grayscale) or 3 (RGB); default: 1 when every training image is "
                "grayscale, else 3")
    option(model, "--memory", dest="train.memory", choices=("auto", "none", "checkpointing", "lean"),
           help="how the step holds its memory: auto (default: the fastest mode whose peak, measured before training, "
                "fits in the memory available; printed and recorded), none (keep every activation), checkpointing "
                "(SwinIR recomputes activations in the backward pass: several times less memory, ~1/3 slower), lean "
                "(checkpointing, and freed memory returned to the system: the least memory on a CPU)")
    option(model, "--checkpointing", dest="train.memory", action="store_const", const="checkpointing",
           help="--memory checkpointing")
    option(model, "--lean-memory", dest="train.memory", action="store_const", const="lean", help="--memory lean")
    loss = parser.add_argument_group("loss")
    option(loss, "--no-stop-gradient", "--no-stop_gradient", dest="loss.stop_gradient", action="store_const",
           const=False, help="let gradients flow through the transformed target (ablation)")
    option(loss, "--scale-axes", dest="loss.scale_axes", choices=VOLUME_SCALE_AXES,
           help="volumes: the axes SEI's down-scaling shrinks: all three by one factor, the lateral ones, z only "
                f"(axial), or z and the planes by factors drawn independently (default {VOLUME_SCALE_AXES[0]})")
    option(loss, "--divergence", dest="loss.divergence", choices=SURE_DIVERGENCES,
           help="how SURE estimates the network's divergence: finite-difference (the paper's; the default from "
                "scratch) or jvp (exact, by forward-mode autodiff: ~1.4x the network's cost, nothing a network "
                "fine-tuned on few images can game; the default with --weights)")
    option(loss, "--alpha", dest="loss.alpha", type=float, help=lazy(lambda: f"weight of the equivariance term (default {config_default('loss.alpha'):g})"))
    budget = parser.add_argument_group("optimisation")
    option(budget, "--batch-size", "--batch_size", dest="data.batch_size", type=_positive_int, help=lazy(lambda: f"default {BATCH_SIZE}; for volumes {VOLUME_BATCH_SIZE}, fewer for larger crops (the voxels of {VOLUME_BATCH_SIZE} crops of {VOLUME_CROP_SIZE}^3)"))
    option(budget, "--crop-size", "--crop_size", dest="data.crop_size", type=_positive_int,
           help=lazy(lambda: f"measurement crop size in pixels (default {CROP_SIZE}; for volumes "
                             f"{VOLUME_CROP_SIZE}, or 4 times SURE's margin: the PSF's half-extent)"))
    option(budget, "--crop-sampling", dest="data.crop_sampling", choices=CROP_SAMPLINGS,
           help="where crops are drawn: uniform (default), or signal (half of them weighted by the crop's mean above "
                "the image's background: for sparse bright structures on a dark field)")
    option(budget, "--augment", dest="data.augment", action=argparse.BooleanOptionalAction,
           help="draw training crops flipped and turned by the flips and quarter turns the operator commutes with "
                "(default: on for volumes, off for images, the paper's protocol)")
    option(budget, "--samples-per-epoch", dest="data.samples_per_epoch", type=_positive_int,
           help="crops per epoch (default: one per image)")
    option(budget, "--epochs", dest="train.epochs", type=_positive_int,
           help=lazy(lambda: f"default {_recipe().PAPER_EPOCHS} (the paper's) on a GPU; a CPU trains "
                             f"{_recipe().LAPTOP_STEPS} steps instead"))
    option(budget, "--steps", dest="train.steps", type=_positive_int, help="train for a number of steps instead")
    option(budget, "--time", dest="train.time", type=_duration,
           help="a wall-clock budget (90s, 10m, 1.5h, 1h30m): alone, the steps that fit are measured before training "
                "(and the learning-rate schedule scaled to them); with --steps or --epochs, a limit; training stops "
                "when it is spent, and --resume --time LONGER continues")
    option(budget, "--lr", dest="train.lr", type=float,
           help=lazy(lambda: f"default: by backbone, {_rate(_recipe().PAPER_LR['deblurring'])} (deblurring) or "
                             f"{_rate(_recipe().PAPER_LR['sr'])} (sr) for SwinIR, {_rate(_convolutional_lr())} for "
                             "the small networks (`sei info` lists each backbone's)"))
    option(budget, "--seed", dest="train.seed", type=int, help=lazy(lambda: f"run seed (default {config_default('train.seed')})"))
    option(budget, "--grad-clip", dest="train.grad_clip", metavar="NORM",
           help="bound on the global gradient norm (default auto: 1 for the laptop recipe, which it keeps from "
                "diverging on a spike; none for the paper's SwinIR recipe); none or 0 turns it off")
    option(budget, "--grad-clip-median", dest="train.grad_clip_median", metavar="FACTOR",
           help="also bound each step's gradient norm at FACTOR times the median of the last 64 steps' (default "
                "auto: 4 for volumes and the laptop recipe, whose rare steps far above the usual norm broke runs; none "
                "for the paper's SwinIR recipe); none or 0 turns it off")
    option(budget, "--ema", dest="train.ema_decay", type=float, metavar="DECAY",
           help="validate and save an exponential moving average of the weights (e.g. 0.999; default off)")
    run = parser.add_argument_group("run")
    option(run, "--out-dir", "--out_dir", dest="out_dir", help="output folder (default runs/<name>)")
    option(run, "--name", dest="name", help="run name")
    add_device_option(run)
    option(run, "--devices", dest="train.devices", type=_devices, help="number of devices (GPUs or CPU processes)")
    option(run, "--num-nodes", dest="train.num_nodes", type=_positive_int, help="number of nodes")
    option(run, "--strategy", dest="train.strategy", help="Lightning strategy, e.g. ddp")
    option(run, "--precision", dest="train.precision", help="auto (default: bf16-mixed where the CPU or GPU computes bf16 natively, "
           "measured within 0.1 dB of fp32 and up to 2x faster; else 32-true), 32-true, bf16-mixed or 16-mixed")
    option(run, "--compile", dest="train.compile", nargs="?", const="default", metavar="MODE",
           help="torch.compile the backbone (SwinIR block by block). MODE: auto (the default: reduce-overhead on a "
                "single GPU, else off), off, or torch.compile's: default (the flag alone), reduce-overhead (also "
                "replays CUDA graphs on GPUs), max-autotune, max-autotune-no-cudagraphs")
    option(run, "--num-workers", dest="data.num_workers", type=_non_negative_int, help="data loader worker processes")
    option(run, "--val-every", dest="train.val_every", type=_non_negative_int, help="validation PSNR every N epochs (0: off)")
    option(run, "--checkpoint-every", dest="train.checkpoint_every", type=_non_negative_int,
           help=lazy(lambda: f"write a checkpoint every N epochs (default {config_default('train.checkpoint_every')}; "
                             "last.ckpt is rewritten every epoch)"))
    option(run, "--checkpoint-keep", dest="train.checkpoint_keep", type=_non_negative_int,
           help=lazy(lambda: f"periodic checkpoints kept, the newest (default {config_default('train.checkpoint_keep')}; "
                             "0 keeps all)"))
    option(run, "--quiet", dest="train.progress", action="store_const", const=False, help="no progress bar")
    run.add_argument("--verbose", action="store_true",
                     help="also show Lightning's messages (devices, the model summary)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                        help="continue the run in --out-dir (or from CHECKPOINT)")
    option(parser, "--strict", dest="data.strict", action="store_const", const=True,
           help="stop on an unreadable image instead of skipping it")
    parser.set_defaults(run=run_command)


def _recipe():
    from sei.config import recipe

    return recipe


def _rate(value: float) -> str:
    """``1e-4`` rather than ``0.0001``."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _convolutional_lr() -> float:
    from sei.models.registry import CONVOLUTIONAL_LR

    return CONVOLUTIONAL_LR


def _devices(text: str) -> int | str:
    """``--devices``: a count, ``auto``, or GPU indices such as ``0,1``."""
    try:
        return int(text)
    except ValueError:
        return text


def quiet_lightning(verbose: bool = False) -> None:
    """Keep Lightning's informational messages (devices, the model summary) off the terminal, or show them."""
    import logging

    import lightning.pytorch  # noqa: F401 - importing it sets its loggers' levels, which we then override

    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)


def run_command(args: argparse.Namespace) -> int:
    from sei.config.resolve import describe_recipe, requested_config, resolve
    from sei.physics.spec import DEGRADATION_FILE
    from sei.training import train

    values = overrides(args)
    for key in ("out_dir", "name"):
        if key in vars(args):
            values[key] = getattr(args, key)
    if "measurements" in vars(args):
        values["data.dataset"] = args.measurements
        values["data.kind"] = "measurements"
    config = resolve(requested_config(values, args.config, args.resume))
    if config.data.kind == "measurements" and not physics_given(args) and not args.config:
        recorded = Path(str(config.data.dataset)) / DEGRADATION_FILE
        if recorded.is_file():
            print(f"read the measurements' operator from {recorded}")
    print(f"operator: {config.physics.describe()}")
    print(f"training: {describe_recipe(config)}")
    quiet_lightning(args.verbose)
    result = train(config, resume=args.resume, enable_model_summary=args.verbose)
    if result.rank != 0:
        return 0
    metrics = ", ".join(f"{k.split('/')[-1]} {v:.4g}" for k, v in result.metrics.items()
                        if k in ("train/loss", "val/psnr", "val/ssim"))
    print(f"trained {result.config.name} in {result.seconds:.0f} s ({metrics})")
    print(f"weights: {result.weights}")
    return 0
