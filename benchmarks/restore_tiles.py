"""What tiling costs in ``sei restore``: a network's time per image, tiled against whole, for common image sizes.

    python benchmarks/restore_tiles.py [--backbones unet-small] [--sizes 600x800,1024x1024,1080x1920]
                                       [--tile 512] [--overlap 32] [--precision 32-true] [--repeats 2]

``sei restore`` cuts images larger than ``--tile`` into overlapping tiles so that memory stays bounded. Every
pixel a tile repeats is computed again, so the tiles' total area over the image's area is the compute overhead
of tiling. For each size this runs the backbone (random weights: the time does not depend on them) through
``NetworkReconstructor`` whole and tiled, and reports the tiles, their area ratio and both times (best of
``--repeats``). Prints a table and records it in benchmarks/results/restore_tiles.json.
"""

from __future__ import annotations

import argparse
import time

import torch
from recording import Table, record

from sei.inference.reconstructors import NetworkReconstructor
from sei.models import build_backbone


def tile_shapes(reconstructor: NetworkReconstructor, y: torch.Tensor) -> list[tuple[int, int]]:
    """The input sizes the network is called with when ``reconstructor`` restores ``y``."""
    shapes = []
    hook = reconstructor.network.register_forward_pre_hook(lambda module, inputs: shapes.append(inputs[0].shape[-2:]))
    try:
        with torch.no_grad():
            reconstructor(y)
    finally:
        hook.remove()
    return [tuple(shape) for shape in shapes]


def best_time(reconstructor: NetworkReconstructor, y: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        with torch.no_grad():
            reconstructor(y)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="unet-small")
    parser.add_argument("--sizes", default="600x800,1024x1024,1080x1920", help="HxW, comma-separated")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    records = []
    for backbone in args.backbones.split(","):
        network = build_backbone(backbone).eval()
        whole = NetworkReconstructor(network, tile=0, precision=args.precision)
        tiled = NetworkReconstructor(network, tile=args.tile, overlap=args.overlap, precision=args.precision)
        for size in args.sizes.split(","):
            height, width = (int(side) for side in size.lower().split("x"))
            y = torch.rand(1, 3, height, width)
            shapes = tile_shapes(tiled, y)
            area = sum(h * w for h, w in shapes) / (height * width)
            row = {"backbone": backbone, "height": height, "width": width, "tiles": len(shapes),
                      "tile_shape": list(max(shapes)), "tile_area_ratio": area,
                      "whole_s": best_time(whole, y, args.repeats), "tiled_s": best_time(tiled, y, args.repeats)}
            row["tiled_over_whole"] = row["tiled_s"] / row["whole_s"]
            records.append(row)
            print(f"{backbone} {size}: {len(shapes)} tiles, {row['tiled_s']:.2f} s tiled, {row['whole_s']:.2f} s whole",
                  flush=True)
    table = Table(f"Seconds per image, tiled (--tile {args.tile} --overlap {args.overlap}) against whole "
                  f"(--tile 0), {args.precision}, best of {args.repeats}",
                  ["backbone", "image", "tiles", "tile size", "pixels computed / image", "tiled s", "whole s",
                   "tiled / whole"],
                  [[r["backbone"], f"{r['height']}x{r['width']}", r["tiles"], "x".join(map(str, r["tile_shape"])),
                    r["tile_area_ratio"], r["tiled_s"], r["whole_s"], r["tiled_over_whole"]] for r in records])
    record("restore_tiles", [table], {"records": records, "tile": args.tile, "overlap": args.overlap,
                                      "precision": args.precision})


if __name__ == "__main__":
    main()
