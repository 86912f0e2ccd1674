"""``sei info``: what this installation offers (tasks, kernels, methods, backbones) and where it runs."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("info", help="list tasks, kernels, methods and backbones",
                                   description=__doc__)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import os

    import torch

    from sei import __version__
    from sei.data.sources import NAMED_DATASETS
    from sei.losses.registry import METHOD_REGISTRY
    from sei.models.registry import BACKBONES
    from sei.core.memory import COALESCING_TUNABLES, coalescing_active, format_tunables, is_glibc
    from sei.physics.kernels import PAPER_KERNELS

    print(f"sei {__version__} (torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU only'})")
    if coalescing_active(os.environ):
        print(f"memory allocator: glibc, freed tensors merge (GLIBC_TUNABLES={format_tunables(COALESCING_TUNABLES)})")
    elif is_glibc():
        print("memory allocator: glibc with its own settings (GLIBC_TUNABLES sets one of sei's tunables, or sei "
              "runs from Python instead of its command line): a training step may hold more memory")
    print("\ntasks: deblurring (--kernel NAME|FILE), sr (--sr-factor 2|3|4, bicubic; with --kernel: blur then decimate)")
    print(f"kernels: {', '.join(PAPER_KERNELS)}; any Gaussian_R<int>/Box_R<int>; or a .pt/.npy/image file "
          "(`sei psf` makes Gaussian, motion, defocus and diffraction PSFs)")
    print(f"datasets: {', '.join(NAMED_DATASETS)} (sample needs no network; --download fetches the others), "
          "or a folder of images")
    print("\nmethods:")
    for entry in METHOD_REGISTRY:
        alias = f" (alias {', '.join(entry.aliases)})" if entry.aliases else ""
        truth = "needs clean images" if entry.needs_ground_truth else "measurements only"
        print(f"  {entry.name:<18}{entry.description}; {truth}{alias}")
    print("\nbackbones:")
    for name, preset in BACKBONES.items():
        print(f"  {name:<18}{preset.description}")
    return 0
