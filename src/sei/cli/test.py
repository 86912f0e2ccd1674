"""``sei test``: evaluate a network or a baseline with the paper's protocol on a dataset or folder of clean images."""

from __future__ import annotations

import argparse
from pathlib import Path

from sei.cli.options import (
    _positive_int, add_data_options, add_device_option, add_physics_options, add_reconstructor_options,
    baseline_options, option, overrides, physics_spec,
)

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
    add_physics_options(parser)
    add_data_options(parser)
    parser.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default val)")
    parser.add_argument("--max-images", type=_positive_int, help="evaluate only the first N images")
    parser.add_argument("--out-dir", "--out_dir", help="where to write metrics.csv, summary.json and images")
    parser.add_argument("--save-images", action="store_true", help="write inputs, estimates and references")
    parser.add_argument("--label", help="name of this evaluation in tables and reports")
    lpips = parser.add_mutually_exclusive_group()
    lpips.add_argument("--lpips", dest="lpips", action="store_const", const=True, default=None,
                       help="compute LPIPS (fails if its AlexNet weights are not available)")
    lpips.add_argument("--no-lpips", dest="lpips", action="store_const", const=False, help="skip LPIPS")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--strict", action="store_true", help="stop on an unreadable image instead of skipping it")
    parser.set_defaults(run=run_command)


def settings_for(args: argparse.Namespace, source):
    """The configuration to evaluate with: the run's settings (or defaults), the options over them, and the physics
    the options give over what the network was trained for (measurements simulated from clean images default to
    the paper's kernel)."""
    from sei.config import ExperimentConfig, from_flat
    from sei.physics.spec import DEFAULT_KERNEL
    from sei.reconstructors import choose_physics

    values = {k: v for k, v in overrides(args).items() if not k.startswith("physics.")}
    base = (source.run_config if source else None) or ExperimentConfig()
    if source and source.run_config is not None and "data.dataset" not in values:
        values["data.dataset"] = base.data.val_dataset or base.data.dataset
    config = from_flat(values, base)
    config.physics, _ = choose_physics(physics_spec(args), source, default_kernel=DEFAULT_KERNEL)
    return config


def open_lpips(flag: bool | None, download: bool, device):
    """The LPIPS metric when wanted and available; ``None`` (with a note) when optional and unavailable."""
    from sei.errors import ResourceUnavailableError
    from sei.metrics import LPIPS

    if flag is False:
        return None
    try:
        return LPIPS(download=download).to(device)
    except ResourceUnavailableError as error:
        if flag:
            raise
        print(f"LPIPS skipped: {error}")
        return None


def run_command(args: argparse.Namespace) -> int:
    import torch

    import sei
    from sei.baselines import canonical_kind
    from sei.data.pairs import MeasurementSet
    from sei.data.sources import load_image_set
    from sei.devices import torch_device
    from sei.evaluation import evaluate, format_table, metric_data_range, write_evaluation
    from sei.reconstructors import locate_network, open_reconstructor

    download = bool(getattr(args, "data.download", False))
    kind = canonical_kind(args.model_kind)
    source = locate_network(args.weights, download=download) if args.weights and kind == "network" else None
    config = settings_for(args, source)
    spec = config.physics
    device = torch_device(config.train.device)
    physics = spec.build()
    images = load_image_set(config.data.dataset, args.split, config.data.datasets_dir, config.data.download, True,
                            config.data.resize, progress=not args.quiet, strict=args.strict)
    if args.max_images:
        images.names, images.images = images.names[: args.max_images], images.images[: args.max_images]
    measurements = MeasurementSet(images, physics, config.data.noise_seed)  # simulated on the CPU, seeded
    data_range = metric_data_range(images.intensity)  # 16-bit and float data are scored without 8-bit rounding
    backbone = config.model.backbone if ("model.backbone" in vars(args) or (source and source.backbone)) else None
    reconstructor = open_reconstructor(kind, physics.to(device), source,
                                       baseline_options(args, download, not args.quiet), backbone=backbone,
                                       ensemble=args.ensemble, precision=args.precision).to(device)
    lpips = open_lpips(args.lpips, download, device)
    if source is not None:
        label = args.label or (source.weights.parent.name if source.run_config else source.weights.stem)
        root = source.weights.parent if source.run_config else Path("results") / source.weights.stem
    else:
        label = args.label or kind
        root = Path("results") / f"{kind}_{spec.task}_{spec.short_name()}_noise{spec.noise_level:g}"
    out_dir = Path(args.out_dir) if args.out_dir else root / f"test_{Path(str(config.data.dataset)).name}_{args.split}"
    settings = {
        "label": label, "model_kind": kind, "ensemble": args.ensemble, "precision": args.precision,
        "weights": str(source.weights) if source else None,
        "backbone": getattr(getattr(reconstructor, "network", None), "sei_architecture", None),
        "baseline_options": {k: v for k, v in baseline_options(args).items() if v is not None and k != "progress"},
        "physics": spec.to_dict(), "dataset": str(config.data.dataset), "split": args.split,
        "resize": config.data.resize, "noise_seed": config.data.noise_seed, "device": str(device),
        "sei": sei.__version__, "torch": torch.__version__,
        "data_range": data_range, "intensity": images.intensity.to_dict() if images.intensity else None,
    }
    evaluation = evaluate(reconstructor, measurements, device, lpips,
                          image_dir=out_dir / "images" if args.save_images else None, settings=settings,
                          progress=not args.quiet, data_range=data_range)
    metrics_path, summary_path = write_evaluation(evaluation, out_dir)
    scoring = "8-bit, as in the paper" if data_range is None else f"{images.intensity.dtype} data, its full range"
    print(f"{spec.describe()}; {images.name} ({len(images)} images); PSNR/SSIM on {scoring}")
    print(format_table([(label, evaluation.summary)]))
    print(f"wrote {metrics_path} and {summary_path}")
    return 0
