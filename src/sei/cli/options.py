"""Command-line options shared by several commands.

Options that set configuration values store them under dotted destinations (``physics.task``) with no
default, so that only the options a user gave override a configuration file or a run's saved settings.
Hyphenated names are canonical; the reference implementation's underscore spellings are accepted too.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["add_data_options", "add_device_option", "add_max_pixels_option", "add_overwrite_option",
           "add_physics_options", "add_reconstructor_options",
           "baseline_options", "config_default", "lazy", "LazyHelp", "method_help", "option", "overrides",
           "physics_given", "physics_spec"]


def _named(name: str) -> Callable[[Callable[[str], Any]], Callable[[str], Any]]:
    """Give an argparse type the name its errors show (``invalid positive integer value: 'x'``)."""
    def name_it(function: Callable[[str], Any]) -> Callable[[str], Any]:
        function.__name__ = name
        return function

    return name_it


@_named("positive integer")
def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


@_named("integer >= 0")
def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive integer, got {text}")
    return value


def add_overwrite_option(parser: argparse.ArgumentParser) -> None:
    """``--overwrite``: the one switch of the output-collision policy (:mod:`sei.io.outputs`)."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist (default: refuse, and write nothing)")


def add_max_pixels_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--max-pixels``: the override of the image-size policy (:mod:`sei.io.images`)."""
    option(parser, "--max-pixels", dest="data.max_pixels", type=_positive_int, help=lazy(lambda: (
           f"most pixels one image file may hold, all pages together (default {_max_pixels()}); larger files are "
           "refused one by one, before they are decoded")))


def _max_pixels() -> int:
    from sei.core.defaults import MAX_PIXELS  # sei.io.images' policy, without importing torch

    return MAX_PIXELS


class LazyHelp:
    """A help text computed only when help is printed: registries that import deepinv stay out of start-up.

    argparse formats help strings with ``%``; this object does the same on the text it computes.
    """

    def __init__(self, text: Callable[[], str]) -> None:
        self.text = text

    def __mod__(self, params: dict[str, Any]) -> str:
        return self.text() % params

    def __str__(self) -> str:
        return self.text()

    def strip(self, characters: str | None = None) -> str:  # argparse tests whether a help text is blank
        return self.text().strip(characters)

    def __contains__(self, part: str) -> bool:  # ArgumentDefaultsHelpFormatter looks for "%(default)"
        return part in self.text()


def config_default(dotted: str) -> Any:
    """The schema's default of a dotted configuration key (``train.seed`` -> 0), for help texts.

    The keys help texts quote are read from :data:`sei.core.defaults.CONFIG_DEFAULTS` (where the schema takes them
    from), so that ``--help`` does not import torch; any other key from the schema itself.
    """
    from sei.core.defaults import CONFIG_DEFAULTS

    if dotted in CONFIG_DEFAULTS:
        return CONFIG_DEFAULTS[dotted]
    from sei.config.schema import ExperimentConfig

    section, _, name = dotted.partition(".")
    return getattr(getattr(ExperimentConfig(), section), name)


def lazy(text: Callable[[], str]) -> LazyHelp:
    """A help text built when help is printed, from the one home of each default it quotes."""
    return LazyHelp(text)


def method_help() -> LazyHelp:
    """``--method``'s help, from the method registry."""

    def text() -> str:
        from sei.losses.registry import methods_help

        return f"training method: {methods_help()}"

    return LazyHelp(text)


def option(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str, dest: str, **kwargs: Any) -> None:
    """Add an option whose value, when given, lands at ``dest`` (a dotted configuration key); its value is shown
    as the key's last part (``--noise-level NOISE_LEVEL``)."""
    if kwargs.get("action", "store") == "store" and "choices" not in kwargs:
        kwargs.setdefault("metavar", dest.rpartition(".")[2].upper())
    parser.add_argument(*flags, dest=dest, default=argparse.SUPPRESS, **kwargs)


# What --noise-level's default is, for each kind of command that takes it (see add_physics_options).
_NOISE_DEFAULTS = {
    "train": ("default: auto for your own --measurements, unless their degradation.yaml records a level; {level:g} "
              "for clean images; auto: estimated from the measurements (printed in the data's units, recorded in "
              "config.yaml); learn: estimated, then learned with the network from the SURE residual (logged as "
              "train/sigma, recorded in the weights)"),
    "restore": ("default: the network's record, else the inputs' degradation.yaml, else auto: estimated from the "
                "inputs and printed in the data's units"),
    "simulate": "default {level:g}: the noise added to simulate measurements from clean images",
}


def add_physics_options(parser: argparse.ArgumentParser, use: str = "train") -> None:
    """The operator and noise options (``--task``, ``--kernel``, ``--noise-level`` ...).

    :param use: ``"train"``, ``"restore"`` (the noise of measurements read: ``auto`` estimates it) or ``"simulate"``
        (the noise added to clean images: a number), which sets what ``--noise-level`` says of its default.
    """
    if use not in _NOISE_DEFAULTS:
        raise ValueError(f"unknown use {use!r}: one of {', '.join(_NOISE_DEFAULTS)}")
    group = parser.add_argument_group("measurements")
    option(group, "--task", dest="physics.task", help="deblurring (default) or sr")
    option(group, "--kernel", dest="physics.kernel",
           help="blur kernel (the PSF): Gaussian_R1..R3, Box_R2..R4, or a .npy/.pt/grayscale image file (`sei psf` "
                "makes one); with --task sr: blur by it, then decimate (default for sr: bicubic down-sampling)")
    option(group, "--sr-factor", "--sr_factor", dest="physics.sr_factor", type=_positive_int,
           help="super-resolution factor (2, 3, 4)")
    option(group, "--boundary", dest="physics.padding", choices=_boundaries(),
           help="what lies beyond the image's borders for the blur (alone or before decimation): circular (the "
                "opposite border, the paper's model and the default), reflect or replicate (a field of view that "
                "does not wrap around: real microscope and camera images)")
    option(group, "--noise-level", "--noise_level", dest="physics.noise_level", help=lazy(lambda: (
           "Gaussian (read-)noise standard deviation in 8-bit grey levels of the network's range: for 8-bit data "
           "their grey levels; for 16-bit data 255 * counts / 65535 (a noise of 500 counts is 1.95); for float data "
           "255 * sigma / scale of the map in config.yaml (sei.io.intensity); "
           + _NOISE_DEFAULTS[use].format(level=_default_noise_level()))))
    option(group, "--noise", dest="physics.noise", choices=("gaussian", "poisson-gaussian"),
           help="noise model: gaussian (default) or poisson-gaussian, y = gain * Poisson(A x / gain) + N(0, sigma^2) "
                "(photon noise plus read noise; needs --gain)")
    option(group, "--gain", dest="physics.gain",
           help="poisson-gaussian: intensity of one photon in [0, 1] image units (1 / peak photon count)"
                + (", or auto (the default for measurements)" if use != "simulate" else ""))


def _boundaries() -> tuple[str, ...]:
    from sei.core.defaults import BOUNDARIES  # FFTBlur's boundary models, without importing torch

    return BOUNDARIES


def _default_noise_level() -> float:
    from sei.core.defaults import DEFAULT_NOISE_LEVEL  # sei.physics.spec's, without importing torch

    return DEFAULT_NOISE_LEVEL


def physics_spec(args: argparse.Namespace):
    """The physics the options describe, in the user's words (:func:`sei.physics.spec.resolve_spec` checks them):
    ``None`` where an option was not given."""
    from sei.physics.spec import PhysicsSpec

    return PhysicsSpec(task=getattr(args, "physics.task", None), kernel=getattr(args, "physics.kernel", None),
                       sr_factor=getattr(args, "physics.sr_factor", None),
                       noise=getattr(args, "physics.noise", None),
                       noise_level=getattr(args, "physics.noise_level", None), gain=getattr(args, "physics.gain", None),
                       padding=getattr(args, "physics.padding", None))


def physics_given(args: argparse.Namespace) -> bool:
    """Whether any physics option was given."""
    return any(key.startswith("physics.") for key in vars(args))


def add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    option(group, "--dataset", dest="data.dataset",
           help="div2k, urban100, ct, sample (embedded, no network), photos (sample and 25 downloaded photographs: "
                "the best training set for photographs the network never saw), photos-test (12 downloaded photographs "
                "no training set uses: for sei test), or a folder of clean images")
    option(group, "--datasets-dir", "--datasets_dir", dest="data.datasets_dir",
           help=lazy(lambda: f"where named datasets are stored and downloaded (default "
                             f"./{config_default('data.datasets_dir')})"))
    option(group, "--download", dest="data.download", action="store_const", const=True,
           help="download a missing named dataset (checksum-verified)")
    option(group, "--resize", dest="data.resize", type=_resize,
           help="resize images so their shorter side is N px, 'none' to keep sizes (default: 256 for named datasets)")
    add_max_pixels_option(group)


@_named("size in pixels or 'none'")
def _resize(text: str) -> int | None:
    if text.lower() in ("none", "null", "0"):
        return None
    return _positive_int(text)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    option(parser, "--device", dest="train.device", help="cpu, cuda, cuda:N or auto (default: a GPU when there is one)")


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted configuration values the user gave."""
    return {key: value for key, value in vars(args).items() if "." in key}


def add_reconstructor_options(parser: argparse.ArgumentParser, weights_required: bool = False,
                              auto_precision: bool = False, auto_ensemble: bool = False) -> None:
    """``--weights`` / ``--model-kind`` and the baselines' settings.

    :param auto_ensemble: ``--ensemble`` / ``--no-ensemble``, left open (``None``) by default for the library to
        decide (``sei restore``: :func:`sei.inference.ensemble.ensemble_by_default`); otherwise a plain switch, off
        (``sei test``: the paper's protocol).
    :param auto_precision: ``--precision`` defaults to ``auto`` (``sei restore``: bf16 for 8-bit data where it is
        native) instead of ``32-true``.
    """
    group = parser.add_argument_group("reconstruction")
    group.add_argument("--weights", required=weights_required,
                       help="a weights file, a training run's folder, or a published weights name")
    group.add_argument("--model-kind", "--model_kind", default="network",
                       help="network (default; needs --weights), identity, bicubic, wiener, tv, richardson-lucy "
                            "(rl), dip, pnp, bm3d (the reference's swinir, id and up are accepted)")
    if auto_ensemble:
        group.add_argument("--ensemble", action=argparse.BooleanOptionalAction, default=None,
                           help="networks: average over the flips and 90-degree rotations the operator allows (up to "
                                "8x slower for images, 16x for volumes; 0.1-0.3 dB better on photographs and z-stacks; "
                                "default: on whenever the operator allows any)")
    else:
        group.add_argument("--ensemble", action="store_true",
                           help="networks: average over the flips and 90-degree rotations the operator allows (up to "
                                "8x slower, usually a little better)")
    bf16 = ("bf16-mixed (the network in bf16 autocast: the paper's SwinIR about 3x faster on CPUs with avx512_bf16, "
            "estimates within a few grey levels; slow where bf16 is emulated)")
    if auto_precision:
        group.add_argument("--precision", default="auto", choices=("auto", "32-true", "bf16-mixed"),
                           help=f"networks: auto (default: bf16-mixed for 8-bit inputs and outputs on a device with "
                                f"native bf16, else 32-true), 32-true (exact) or {bf16}")
    else:
        group.add_argument("--precision", default="32-true", help=f"networks: 32-true (default, exact) or {bf16}")
    group.add_argument("--wiener-strength", type=float, help="Wiener regularisation, in units of sigma^2")
    group.add_argument("--tv-weight", type=float, help="TV weight (default 0.05 sigma)")
    group.add_argument("--tv-iterations", type=_positive_int,
                       help=lazy(lambda: f"ADMM iterations for TV (default {_baseline_default('tv_iterations')})"))
    group.add_argument("--rl-iterations", type=_positive_int,
                       help=lazy(lambda: f"Richardson-Lucy: most iterations (default {_baseline_default('rl_iterations')})"))
    group.add_argument("--rl-stop", choices=("discrepancy", "iterations"),
                       help="Richardson-Lucy: stop when the residual is as large as the noise model says "
                            "(discrepancy, the default; no ground truth needed) or after --rl-iterations")
    group.add_argument("--rl-tv", type=float, help="Richardson-Lucy: RL-TV weight (default 0: plain RL; e.g. 0.002)")
    group.add_argument("--dip-iterations", type=_positive_int,
                       help="DIP iterations (default 4000 for Gaussian blur, 1000 for box blur and SR)")
    group.add_argument("--dip-channels", type=_positive_int,
                       help=lazy(lambda: f"DIP decoder width (default {_baseline_default('dip_channels')})"))
    group.add_argument("--pnp-weights", help="DRUNet weights file for pnp (default: deepinv's cached file)")
    group.add_argument("--bm3d-profile",
                       help=lazy(lambda: f"bm3d profile (default {_baseline_default('bm3d_profile')})"))


def _baseline_default(option: str) -> Any:
    from sei.core.defaults import BASELINE_DEFAULTS  # sei.inference.baselines', without importing torch

    return BASELINE_DEFAULTS[option]


def baseline_options(args: argparse.Namespace, download: bool = False, progress: bool = True) -> dict[str, Any]:
    """The baselines' settings the user gave (see ``sei.inference.baselines.build_baseline``)."""
    return {"wiener_strength": args.wiener_strength, "tv_weight": args.tv_weight, "tv_iterations": args.tv_iterations,
            "rl_iterations": args.rl_iterations, "rl_tv": args.rl_tv, "rl_stop": args.rl_stop,
            "dip_iterations": args.dip_iterations, "dip_channels": args.dip_channels, "pnp_weights": args.pnp_weights,
            "bm3d_profile": args.bm3d_profile, "download": download, "progress": progress}
