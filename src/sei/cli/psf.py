"""``sei psf``: write a point-spread function (blur kernel) from optics parameters, for ``--kernel``.

Writes ``OUT.npy`` (float32, normalised to sum 1, odd-sized) and ``OUT.png``, a preview scaled to the kernel's
maximum. Lengths are in pixels; for diffraction, the wavelength and the pixel size are in one unit of your
choice (nm, µm): the pixel size at the sample for a microscope (with --na), on the sensor for a telescope or
camera (with --f-number). ``widefield`` and ``confocal`` write 3-D microscope PSFs ``(planes, size, size)`` for
z-stacks (scalar Gibson-Lanni model, :mod:`sei.physics.psf3d`): wavelength, pixel size, z-step and depth in one unit.
``bead`` makes a measured PSF from an image (a z-stack, or one image) of a sub-resolution bead: background subtracted,
centred on the bead, cropped to ``--planes`` x ``--size`` and normalised.
"""

from __future__ import annotations

import argparse

from sei.cli.options import add_overwrite_option
from sei.core.errors import KernelError

__all__ = ["EPILOG", "add_parser", "run_command"]

EPILOG = """examples:
  sei psf motion psf_motion.npy --length 9 --angle 30
  sei psf diffraction psf_widefield.npy --wavelength 520 --pixel-size 65 --na 1.4     # nm
  sei psf diffraction psf_telescope.npy --wavelength 0.55 --pixel-size 3.76 --f-number 8   # um
  sei psf gaussian psf_gauss.npy --sigma 2 --sigma-y 1 --angle 45
  sei psf defocus psf_defocus.npy --radius 3.5
  sei psf Gaussian_R2 gaussian_r2.npy                   # the paper's named kernels too
  sei psf widefield psf3d.npy --wavelength 520 --na 1.4 --pixel-size 65 --z-step 200              # nm, 3-D
  sei psf widefield psf3d.npy --wavelength 520 --na 1.2 --pixel-size 100 --z-step 300 \
      --immersion-index 1.333 --sample-index 1.38 --depth 20000          # water objective, 20 um deep in tissue
  sei psf confocal psf3d.npy --wavelength 520 --excitation-wavelength 488 --na 1.4 --pixel-size 50 \
      --z-step 150 --pinhole 1
  sei psf bead psf_measured.npy --bead bead_stack.tif --planes 31 --size 25      # a measured bead, 3-D
"""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("psf", help="write a blur kernel (PSF) from optics parameters",
                                   description=__doc__, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", help="gaussian, motion, defocus, diffraction, widefield (3-D), confocal (3-D), bead "
                                     "(measured, from --bead), or a named kernel (Gaussian_R2, Box_R3 ...)")
    parser.add_argument("output", help="the .npy file to write (a .png preview is written beside it)")
    parser.add_argument("--size", type=int, help="kernel size in pixels (odd; default: large enough for the PSF)")
    gaussian = parser.add_argument_group("gaussian")
    gaussian.add_argument("--sigma", type=float, help="standard deviation along the first axis (px)")
    gaussian.add_argument("--sigma-y", type=float, help="standard deviation along the second axis (px; default --sigma)")
    parser.add_argument("--angle", type=float, help="orientation in degrees, counter-clockwise (gaussian, motion)")
    motion = parser.add_argument_group("motion")
    motion.add_argument("--length", type=float, help="length of the motion (px)")
    defocus = parser.add_argument_group("defocus")
    defocus.add_argument("--radius", type=float, help="radius of the defocus disc (px)")
    optics = parser.add_argument_group("diffraction (Airy pattern of a circular aperture)")
    optics.add_argument("--wavelength", type=float, help="wavelength (same unit as --pixel-size)")
    optics.add_argument("--pixel-size", type=float, help="pixel size at the sample (microscope) or on the sensor")
    optics.add_argument("--na", type=float, help="numerical aperture of the objective (microscope)")
    optics.add_argument("--f-number", type=float, help="f-number of the optics (telescope, camera)")
    optics.add_argument("--rings", type=int, help="dark rings the default size holds (default 3)")
    volume = parser.add_argument_group("widefield and confocal (3-D; lengths in the unit of --wavelength)")
    volume.add_argument("--z-step", type=float, help="distance between planes")
    volume.add_argument("--planes", type=int, help="number of planes (odd; default: four axial half-widths each side)")
    volume.add_argument("--immersion-index", type=float, help="refractive index of the immersion (default 1.515, oil)")
    volume.add_argument("--sample-index", type=float, help="refractive index of the sample (default: the immersion's)")
    volume.add_argument("--depth", type=float, help="depth below the coverslip (matters when the indices differ)")
    volume.add_argument("--excitation-wavelength", type=float, help="confocal: the laser's wavelength")
    volume.add_argument("--pinhole", type=float, help="confocal: pinhole diameter in Airy units (default 1)")
    measured = parser.add_argument_group("bead (a measured PSF)")
    measured.add_argument("--bead", help="image or z-stack (multi-page TIFF) of one sub-resolution bead")
    add_overwrite_option(parser)
    parser.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    from sei.physics.kernels import save_kernel
    from sei.physics.psf import psf_with_sampling

    if str(args.kind).strip().lower() == "bead":
        kernel, sampling = _measured_bead(args)
    else:
        if args.bead is not None:
            raise KernelError(f"--bead is for `sei psf bead`, not a {args.kind} PSF")
        kernel, sampling = psf_with_sampling(
            args.kind, size=args.size, sigma=args.sigma, sigma_y=args.sigma_y, angle=args.angle, length=args.length,
            radius=args.radius, wavelength=args.wavelength, pixel_size=args.pixel_size, na=args.na,
            f_number=args.f_number, rings=args.rings, z_step=args.z_step, planes=args.planes,
            immersion_index=args.immersion_index, sample_index=args.sample_index, depth=args.depth,
            excitation_wavelength=args.excitation_wavelength, pinhole=args.pinhole)
    npy, png = save_kernel(kernel, args.output, overwrite=args.overwrite, voxel_size=sampling)
    shape = "x".join(map(str, kernel.shape))
    print(f"wrote {npy} ({shape}, sums to 1) and its preview {png}")
    if sampling is not None:
        from sei.io.voxels import describe_voxel_size, psf_sampling_file

        print(f"its voxel size, {describe_voxel_size(sampling)}, in {psf_sampling_file(npy)}: stacks of other voxels "
              "are refused")
    return 0


def _measured_bead(args: argparse.Namespace):
    from sei.physics.psf3d import bead_psf_file

    if args.bead is None:
        raise KernelError("a bead PSF needs --bead FILE: an image or z-stack of one sub-resolution bead")
    given = [name for name in ("sigma", "length", "radius", "wavelength", "na", "z_step") if getattr(args, name)]
    if given:
        raise KernelError(f"a bead PSF is measured: it takes no --{given[0].replace('_', '-')}")
    return bead_psf_file(args.bead, args.planes, args.size)
