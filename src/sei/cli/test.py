"""``sei test``: evaluate a trained network with the paper's protocol on a dataset or folder of clean images."""

from __future__ import annotations

import argparse
from pathlib import Path

from sei.cli.options import _positive_int, add_data_options, add_device_option, add_physics_options, option, overrides

EPILOG = """examples:
  sei test --weights runs/sample_deblurring_Gaussian_R2_noise5_sei        # a run folder: its settings are reused
  sei test --weights weights.pt --task sr --sr-factor 2 --dataset div2k --download --save-images
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("test", help="evaluate a network (PSNR, SSIM, LPIPS) on clean images",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", required=True, help="a weights file, or a training run's folder")
    option(parser, "--model", dest="model.backbone", help="backbone, for weights files without an architecture record")
    add_physics_options(parser)
    add_data_options(parser)
    parser.add_argument("--split", default="val", choices=("train", "val"), help="dataset split (default val)")
    parser.add_argument("--max-images", type=_positive_int, help="evaluate only the first N images")
    parser.add_argument("--out-dir", "--out_dir", help="where to write metrics.csv, summary.json and images")
    parser.add_argument("--save-images", action="store_true", help="write inputs, estimates and references")
    lpips = parser.add_mutually_exclusive_group()
    lpips.add_argument("--lpips", dest="lpips", action="store_const", const=True, default=None,
                       help="compute LPIPS (fails if its AlexNet weights are not available)")
    lpips.add_argument("--no-lpips", dest="lpips", action="store_const", const=False, help="skip LPIPS")
    add_device_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(run=run_command)


def resolve_weights(weights: str) -> tuple[Path, Path | None]:
    """``(weights file, run folder or None)`` for a weights file or a training run's folder."""
    from sei.errors import WeightsError
    from sei.training.run import CONFIG_FILE, WEIGHTS_FILE

    path = Path(weights)
    if path.is_dir():
        if not (path / WEIGHTS_FILE).is_file():
            raise WeightsError(f"{path} is a folder without {WEIGHTS_FILE}; is it a finished training run?")
        return path / WEIGHTS_FILE, path if (path / CONFIG_FILE).is_file() else None
    return path, None


def run_command(args: argparse.Namespace) -> int:
    import torch

    import sei
    from sei.config import ExperimentConfig, from_flat
    from sei.data.pairs import MeasurementSet
    from sei.data.sources import load_image_set
    from sei.devices import torch_device
    from sei.errors import ResourceUnavailableError
    from sei.evaluation import evaluate, format_table, write_evaluation
    from sei.metrics import LPIPS
    from sei.models.weights import load_backbone
    from sei.physics.factory import make_physics
    from sei.training.run import load_run_config

    weights, run_dir = resolve_weights(args.weights)
    base = load_run_config(run_dir) if run_dir else ExperimentConfig()
    values = overrides(args)
    if run_dir and "data.dataset" not in values:
        values["data.dataset"] = base.data.val_dataset or base.data.dataset
    config = from_flat(values, base)
    physics_config = config.physics
    if physics_config.task in ("sr", "super-resolution") and physics_config.sr_factor is None:
        physics_config.sr_factor = 2
    if physics_config.task not in ("sr", "super-resolution"):
        physics_config.kernel = physics_config.kernel or "Gaussian_R2"
        physics_config.sr_factor = None
    else:
        physics_config.kernel = None
    physics = make_physics(physics_config.task, physics_config.kernel, physics_config.sr_factor,
                           physics_config.noise_level)
    device = torch_device(config.train.device)
    model = load_backbone(weights, backbone=config.model.backbone if "model.backbone" in values or run_dir else None,
                          upscale=physics.upscale).to(device).eval()
    images = load_image_set(config.data.dataset, args.split, config.data.datasets_dir, config.data.download, True,
                            config.data.resize, progress=not args.quiet)
    if args.max_images:
        images.names, images.images = images.names[: args.max_images], images.images[: args.max_images]
    measurements = MeasurementSet(images, physics.to(device), config.data.noise_seed)

    lpips = None
    if args.lpips is not False:
        try:
            lpips = LPIPS(download=config.data.download).to(device)
        except ResourceUnavailableError as error:
            if args.lpips:
                raise
            print(f"LPIPS skipped: {error}")

    out_dir = Path(args.out_dir) if args.out_dir else (
        (run_dir or Path("results") / weights.stem) / f"test_{Path(str(config.data.dataset)).name}_{args.split}")
    settings = {
        "weights": str(weights), "backbone": model.sei_architecture, "physics": vars(physics_config),
        "dataset": str(config.data.dataset), "split": args.split, "resize": config.data.resize,
        "noise_seed": config.data.noise_seed, "device": str(device), "sei": sei.__version__,
        "torch": torch.__version__,
    }
    evaluation = evaluate(lambda y: model(y), measurements, device, lpips,
                          image_dir=out_dir / "images" if args.save_images else None, settings=settings,
                          progress=not args.quiet)
    metrics_path, summary_path = write_evaluation(evaluation, out_dir)
    task = (f"{physics_config.kernel} deblurring" if physics.upscale == 1 else f"x{physics.upscale} super-resolution")
    print(f"{task}, noise level {physics_config.noise_level:g}, {images.name} ({len(images)} images)")
    print(format_table([(weights.parent.name if run_dir else weights.name, evaluation.summary)]))
    print(f"wrote {metrics_path} and {summary_path}")
    return 0
