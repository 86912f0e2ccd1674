"""Benchmark the blur's boundary models: the edge error of restoring a field of view that does not wrap around with
the circular model, and with the boundary model that describes it.

    python benchmarks/boundaries.py [--kinds wiener,tv,richardson-lucy,bm3d] [--size 192] [--band 16]
                                    [--noise-level 2] [--psf airy|Gaussian_R2]

Six grayscale images that scikit-image installs (cell, coins, moon, page, text and the Hubble deep field), centre
crops of ``--size`` pixels, in [0, 1]. Two ways of measuring them:

- ``reflect``: the crop blurred with reflecting borders (``FFTBlur(boundary="reflect")``), the model exact;
- ``larger scene``: the whole image blurred and the crop cut out of it afterwards, as a camera or microscope sees a
  part of a larger scene: no boundary model is exact there; reflection is the nearest.

The PSF is a widefield Airy pattern (520 nm, NA 1.4, 65 nm pixels: ``sei psf diffraction``) or a named kernel,
with Gaussian noise of ``--noise-level`` grey levels. Each classical restorer runs with the circular model and with
the reflecting one, with its own default strength and stopping rule; PSNR (peak 1) on the outer ``--band`` pixels,
on the interior and on the whole image, averaged over the images, and seconds per image. Records
benchmarks/results/boundaries.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from recording import Table, record

from sei.inference.baselines import build_baseline
from sei.physics import PhysicsSpec, resolve_spec
from sei.physics.blur import FFTBlur
from sei.physics.psf import airy_psf

IMAGES = ("cell", "coins", "moon", "page", "text", "hubble_deep_field")


def gray_image(name: str) -> torch.Tensor:
    """A scikit-image sample as a ``(1, 1, H, W)`` float64 tensor in [0, 1] (colour averaged to gray)."""
    from skimage import data

    array = np.asarray(getattr(data, name)(), dtype=np.float64) / 255.0
    if array.ndim == 3:
        array = array[..., :3].mean(-1)
    return torch.from_numpy(array)[None, None]


def centre(x: torch.Tensor, size: int) -> tuple[slice, slice]:
    height, width = x.shape[-2:]
    size_h, size_w = min(size, height), min(size, width)
    top, left = (height - size_h) // 2, (width - size_w) // 2
    return slice(top, top + size_h), slice(left, left + size_w)


def band_psnr(estimate: torch.Tensor, truth: torch.Tensor, band: int) -> dict[str, float]:
    """PSNR (peak 1) on the outer ``band`` pixels, on the rest, and on the whole image."""
    error = (estimate.double() - truth).pow(2)
    inner = torch.zeros_like(error, dtype=torch.bool)
    inner[..., band:-band, band:-band] = True

    def psnr(values: torch.Tensor) -> float:
        return float(-10 * torch.log10(values.mean().clamp(min=1e-12)))

    return {"band": psnr(error[~inner]), "interior": psnr(error[inner]), "whole": psnr(error)}


def measurements(kernel: torch.Tensor, size: int, sigma: float, generator: torch.Generator):
    """``{protocol: [(clean crop, measurement)]}`` for the two protocols of the module's docstring."""
    reflect, circular = FFTBlur(kernel, boundary="reflect"), FFTBlur(kernel)
    out: dict[str, list] = {"reflect": [], "larger scene": []}
    for name in IMAGES:
        whole = gray_image(name)
        rows, columns = centre(whole, size)
        crop = whole[..., rows, columns]
        # the whole image is a larger scene than the crop; its own borders are far from the crop's
        scene_blur = circular.A(whole)[..., rows, columns]
        for protocol, blurred in (("reflect", reflect.A(crop)), ("larger scene", scene_blur)):
            noise = sigma * torch.randn(blurred.shape, generator=generator, dtype=torch.float64)
            out[protocol].append((name, crop, (blurred + noise).float()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default="wiener,tv,richardson-lucy,bm3d")
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--band", type=int, default=16)
    parser.add_argument("--noise-level", type=float, default=2.0, help="Gaussian noise, 8-bit grey levels")
    parser.add_argument("--psf", default="airy", help="airy (520 nm, NA 1.4, 65 nm pixels) or a named kernel")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    kernel = airy_psf(0.52, 0.065, numerical_aperture=1.4) if args.psf == "airy" else args.psf
    generator = torch.Generator().manual_seed(args.seed)
    sets = measurements(FFTBlur(kernel).kernel, args.size, args.noise_level / 255, generator)
    rows, data = [], {}
    for protocol, pairs in sets.items():
        blurry = [band_psnr(y, x, args.band) for _, x, y in pairs]
        rows.append([protocol, "blurry", "", *[np.mean([s[k] for s in blurry]) for k in ("band", "interior", "whole")],
                     None])
        for kind in args.kinds.split(","):
            for boundary in ("circular", "reflect"):
                spec = resolve_spec(PhysicsSpec(kernel=FFTBlur(kernel).kernel, noise_level=args.noise_level,
                                                padding=boundary))
                restorer = build_baseline(kind, spec.build(), {"progress": False})
                scores, seconds = [], 0.0
                for name, x, y in pairs:
                    started = time.perf_counter()
                    estimate = restorer(y)
                    seconds += time.perf_counter() - started
                    scores.append(band_psnr(estimate, x, args.band))
                    data[f"{protocol}/{kind}/{boundary}/{name}"] = scores[-1]
                mean = {k: float(np.mean([s[k] for s in scores])) for k in ("band", "interior", "whole")}
                rows.append([protocol, kind, boundary, mean["band"], mean["interior"], mean["whole"],
                             seconds / len(pairs)])
                print(rows[-1], flush=True)
    table = Table(f"Restoring {args.size}x{args.size} crops of {len(IMAGES)} scikit-image images "
                  f"({args.psf} PSF, noise {args.noise_level:g}/255): PSNR (dB, peak 1) on the outer {args.band} "
                  "pixels, the interior and the whole, by the model of what lies beyond the borders",
                  ["measured as", "restorer", "boundary model", f"PSNR outer {args.band} px", "PSNR interior",
                   "PSNR whole", "s/image"], rows,
                  notes="'reflect': the crop blurred with reflecting borders (the model exact); 'larger scene': the "
                        "whole image blurred, then the crop cut out (no model exact; reflection the nearest).")
    record("boundaries", [table], data)


if __name__ == "__main__":
    main()
