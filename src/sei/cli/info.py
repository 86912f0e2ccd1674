"""``sei info``: what this installation offers (tasks, kernels, methods, backbones) and where it runs."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="list tasks, kernels, methods and backbones",
                                   description=__doc__)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from sei import __version__
    from sei.methods import METHOD_ALIASES, METHODS
    from sei.models.registry import BACKBONES
    from sei.physics.kernels import PAPER_KERNELS

    aliases = {target: [a for a, t in METHOD_ALIASES.items() if t == target] for target in METHODS}
    print(f"sei {__version__} (torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU only'})")
    print("\ntasks: deblurring (--kernel NAME|FILE), sr (--sr-factor 2|3|4)")
    print(f"kernels: {', '.join(PAPER_KERNELS)}; any Gaussian_R<int>/Box_R<int>; or a .pt/.npy/image file")
    print("\nmethods:")
    for name, info in METHODS.items():
        alias = f" (alias {', '.join(aliases[name])})" if aliases[name] else ""
        truth = "needs clean images" if info.needs_ground_truth else "measurements only"
        print(f"  {name:<18}{info.description}; {truth}{alias}")
    print("\nbackbones:")
    for name, preset in BACKBONES.items():
        print(f"  {name:<18}{preset.description}")
    return 0
