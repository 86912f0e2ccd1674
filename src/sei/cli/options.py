"""Command-line options shared by several commands.

Options that set configuration values store them under dotted destinations (``physics.task``) with no
default, so that only the options a user gave override a configuration file or a run's saved settings.
Hyphenated names are canonical; the reference implementation's underscore spellings are accepted too.
"""

from __future__ import annotations

import argparse
from typing import Any


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str, dest: str, **kwargs: Any) -> None:
    """Add an option whose value, when given, lands at ``dest`` (a dotted configuration key)."""
    parser.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, **kwargs)


def add_physics_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("measurements")
    option(group, "--task", dest="physics.task", help="deblurring or sr")
    option(group, "--kernel", dest="physics.kernel",
           help="blur kernel: Gaussian_R1..R3, Box_R2..R4, or a .pt/.npy/grayscale image file")
    option(group, "--sr-factor", "--sr_factor", dest="physics.sr_factor", type=_positive_int,
           help="super-resolution factor (2, 3, 4)")
    option(group, "--noise-level", "--noise_level", dest="physics.noise_level", type=float,
           help="Gaussian noise standard deviation in 8-bit grey levels (default 5)")


def physics_settings(args: argparse.Namespace) -> dict[str, Any]:
    """``task``, ``kernel``, ``sr_factor``, ``noise_level`` the physics options describe (deblurring with
    Gaussian_R2 and noise level 5 by default)."""
    from sei.physics.factory import canonical_task

    task = canonical_task(getattr(args, "physics.task", "deblurring"))
    return {"task": task,
            "kernel": getattr(args, "physics.kernel", "Gaussian_R2") if task == "deblurring" else None,
            "sr_factor": getattr(args, "physics.sr_factor", None),
            "noise_level": getattr(args, "physics.noise_level", 5.0)}


def physics_from_args(args: argparse.Namespace):
    """The operator the physics options describe (see :func:`physics_settings`)."""
    from sei.physics.factory import make_physics

    return make_physics(**physics_settings(args))


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    option(group, "--dataset", dest="data.dataset",
           help="div2k, urban100, ct, sample (embedded, no network), or a folder of clean images")
    option(group, "--datasets-dir", "--datasets_dir", dest="data.datasets_dir",
           help="where named datasets are stored and downloaded (default ./datasets)")
    option(group, "--download", dest="data.download", action="store_const", const=True,
           help="download a missing named dataset (checksum-verified)")
    option(group, "--resize", dest="data.resize", type=_resize,
           help="resize images so their shorter side is N px, 'none' to keep sizes (default: 256 for named datasets)")


def _resize(text: str) -> int | None:
    if text.lower() in ("none", "null", "0"):
        return None
    return _positive_int(text)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    option(parser, "--device", dest="train.device", help="cpu, cuda, cuda:N or auto (default: a GPU when there is one)")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted configuration values the user gave."""
    return {key: value for key, value in vars(args).items() if "." in key}


def add_reconstructor_options(parser: argparse.ArgumentParser, weights_required: bool = False) -> None:
    """``--weights`` / ``--model-kind`` and the baselines' settings."""
    group = parser.add_argument_group("reconstruction")
    group.add_argument("--weights", required=weights_required,
                       help="a weights file, a training run's folder, or a published weights name")
    group.add_argument("--model-kind", "--model_kind", default="network",
                       help="network (default; needs --weights), identity, bicubic, wiener, tv, dip, pnp, bm3d "
                            "(the reference's swinir, id and up are accepted)")
    group.add_argument("--wiener-strength", type=float, help="Wiener regularisation, in units of sigma^2")
    group.add_argument("--tv-weight", type=float, help="TV weight (default 0.05 sigma)")
    group.add_argument("--tv-iterations", type=_positive_int, help="ADMM iterations for TV (default 100)")
    group.add_argument("--dip-iterations", type=_positive_int,
                       help="DIP iterations (default 4000 for Gaussian blur, 1000 for box blur and SR)")
    group.add_argument("--dip-channels", type=_positive_int, help="DIP decoder width (default 256)")
    group.add_argument("--pnp-weights", help="DRUNet weights file for pnp (default: deepinv's cached file)")
    group.add_argument("--bm3d-profile", help="bm3d profile (default np)")


def baseline_options(args: argparse.Namespace, download: bool = False, progress: bool = True) -> dict[str, Any]:
    """The baselines' settings the user gave (see ``sei.baselines.build_baseline``)."""
    return {"wiener_strength": args.wiener_strength, "tv_weight": args.tv_weight, "tv_iterations": args.tv_iterations,
            "dip_iterations": args.dip_iterations, "dip_channels": args.dip_channels, "pnp_weights": args.pnp_weights,
            "bm3d_profile": args.bm3d_profile, "download": download, "progress": progress}
