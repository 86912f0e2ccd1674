"""``sei info``: what this installation offers (operators, kernels, datasets, methods, backbones) and where it runs."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "run"]


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
    from sei.physics.registry import OPERATORS

    print(f"sei {__version__} (torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU only'})")
    if coalescing_active(os.environ):
        print(f"memory allocator: glibc, freed tensors merge (GLIBC_TUNABLES={format_tunables(COALESCING_TUNABLES)})")
    elif is_glibc():
        print("memory allocator: glibc with its own settings (GLIBC_TUNABLES sets one of sei's tunables, or sei "
              "runs from Python instead of its command line): a training step may hold more memory")
    print("\noperators (--task, with the options each takes):")
    for kind in OPERATORS.values():
        options = " ".join(f"--{name.replace('_', '-')}" for name in sorted(kind.fields))
        print(f"  {kind.name:<18}--task {kind.task} {options}: {kind.description}")
    print(f"\nkernels: {', '.join(PAPER_KERNELS)}; any Gaussian_R<int>/Box_R<int>; or a .pt/.npy/image file "
          "(`sei psf` makes Gaussian, motion, defocus and diffraction PSFs)")
    print(f"datasets: {', '.join(NAMED_DATASETS)} (sample needs no network; --download fetches the others), "
          "or a folder of images")
    print("\nmethods:")
    for entry in METHOD_REGISTRY:
        alias = f" (alias {', '.join(entry.aliases)})" if entry.aliases else ""
        truth = "needs clean images" if entry.needs_ground_truth else "measurements only"
        print(f"  {entry.name:<18}{entry.description}; {truth}{alias}")
    print("\nbackbones (learning rate when none is given):")
    for name, preset in BACKBONES.items():
        rate = "the paper's by task" if preset.lr is None else f"{preset.lr:g}"
        print(f"  {name:<18}{preset.description}; lr {rate}")
    return 0
