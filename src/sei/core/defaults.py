"""Defaults that help texts and the registries' declarative parts quote, in a module that imports nothing.

``sei COMMAND --help`` shows these without importing torch, deepinv or Lightning (``tests/test_startup.py``
checks it), so each value is defined here, once; the module that uses it imports it from here and keeps its
name (``sei.physics.spec.DEFAULT_NOISE_LEVEL`` is this module's). A default that no help text quotes stays in its
own module.
"""

from __future__ import annotations

__all__ = ["BASELINE_DEFAULTS", "BATCH_SIZE", "BOUNDARIES", "CHECKPOINT_EVERY", "CHECKPOINT_KEEP", "CHECKPOINTING",
           "CONFIG_DEFAULTS", "CROP_SAMPLINGS", "CROP_SIZE", "DATASETS_DIR", "DEFAULT_ALPHA", "DEFAULT_LICENSE",
           "DEFAULT_NOISE_LEVEL", "DEMO_FINETUNE_STEPS", "DEMO_PRETRAINED", "DEMO_STEPS", "MAX_PIXELS", "PAPER_SWINIR",
           "SEED", "STACK_CHUNK_BYTES", "STACK_CHUNK_OVERLAP", "STACK_CHUNK_PLANES", "STACK_MIN_BLOCKS",
           "STACK_SAMPLE_PLANES", "SURE_DIVERGENCES", "VOLUME_BATCH_SIZE", "VOLUME_CROP_SIZE", "VOLUME_SCALE_AXES"]

# -- measurements (sei.physics.spec) ------------------------------------------------------------------------
# The paper's noise level (grey levels): the one default of every noise level in sei.
DEFAULT_NOISE_LEVEL = 5.0
# What a blur assumes beyond the image's borders (sei.physics.blur.FFTBlur), the first the default: the paper's
# circular model, or extensions that do not wrap around (a real field of view).
BOUNDARIES = ("circular", "reflect", "replicate")

# -- image files (sei.io.images) ----------------------------------------------------------------------------
# Pixels one file may hold, all pages together: 2**28 (268 megapixels; a 16384 x 16384 image, or 64 slices of
# 2048 x 2048) is 1 GiB as float32 per channel, what a laptop restores comfortably; above Pillow's own bound
# (179 megapixels), which would otherwise stop genuine large images with its DecompressionBombError.
MAX_PIXELS = 2**28
# A z-stack whose float32 copy would be larger than this is restored along z a chunk of STACK_CHUNK_PLANES planes at
# a time (sei.inference.restoration): read, restored (tiled laterally) and written chunk by chunk, so memory holds a
# few copies of one chunk whatever the stack's depth. Neighbouring chunks share STACK_CHUNK_OVERLAP planes, blended:
# a widefield PSF's half-depth is 7 to 10 planes in the benchmarks. Its intensity map and noise level come from
# STACK_SAMPLE_PLANES planes spread over it.
STACK_CHUNK_BYTES = 2**29
STACK_CHUNK_PLANES = 48
STACK_CHUNK_OVERLAP = 16
STACK_SAMPLE_PLANES = 32
# Training reads such a stack as blocks spread over it, within STACK_CHUNK_BYTES together: slabs of whole planes
# when they fit, otherwise squares of them small enough for at least STACK_MIN_BLOCKS blocks (crops drawn from many
# places in the stack, not from one corner).
STACK_MIN_BLOCKS = 16

# -- losses (sei.losses.equivariance) -----------------------------------------------------------------------
# Which axes of a volume SEI's scale transform (sei.transforms.scale_volume) shrinks, the first the default: all
# three (a smaller copy of the scene, whatever the voxels' anisotropy: each axis shrinks by the same factor in voxels,
# so in micrometres too), the lateral ones only (objects change their aspect ratio), z only, or z and the planes by
# factors drawn independently. On the benchmark phantom (voxels 3x deeper than wide, benchmarks/volumes.py) all three
# trained better than lateral: 16.88 against 16.53 dB after 400 steps of batch 4 of 32^3 crops (SURE alone 16.53);
# in 20 minutes, independent was level with all (17.69 against 17.67) and z only ran away (10.36).
VOLUME_SCALE_AXES = ("all", "lateral", "axial", "independent")
# How SURE estimates the divergence of A f (sei.losses.sure), the first the default: the paper's finite difference
# f(y + tau b) - f(y), or the exact Jacobian-vector product J b by forward-mode autodiff, which a network cannot game
# by growing non-smooth at the scale tau (as a fine-tuning on 14 photographs did: -42 per pixel at tau, +0.41 at
# tau / 10; its output exploded on textures it had not seen).
SURE_DIVERGENCES = ("finite-difference", "jvp")
# The weight of the equivariance term against SURE (the paper's alpha).
DEFAULT_ALPHA = 1.0

# -- the experiment configuration (sei.config.schema's fields) ----------------------------------------------
DATASETS_DIR = "datasets"
CROP_SIZE = 48
# Volumes (z-stacks) train on smaller batches of c x c x c crops (all planes of a thinner stack), at least four times
# SURE's margin along every axis, in batches of about the voxels of 4 crops of 32^3 (sei.config.recipe.default_crop):
# a 32^3 crop holds 5.5 times the voxels of the 48^2 crops' pixels, and 4 of them about 2 steps a second with
# unet3d-small on two cores (benchmarks/volumes.py).
VOLUME_CROP_SIZE = 32
VOLUME_BATCH_SIZE = 4
# Where training crops are drawn (sei.data.pairs.CropDataset), the first the default. "signal" (half the crops
# weighted by their signal) measured no gain on fluorescence images (docs: own-measurements), so it is not it.
CROP_SAMPLINGS = ("uniform", "signal")
BATCH_SIZE = 8
SEED = 0
CHECKPOINT_EVERY = 10  # epochs; the latest checkpoint is also kept at every epoch
CHECKPOINT_KEEP = 3  # periodic checkpoints kept (the newest); 0 keeps all
# The dotted configuration keys of the defaults help texts quote (sei.cli.options.config_default).
CONFIG_DEFAULTS = {"data.datasets_dir": DATASETS_DIR, "train.seed": SEED, "train.checkpoint_every": CHECKPOINT_EVERY,
                   "train.checkpoint_keep": CHECKPOINT_KEEP, "loss.alpha": DEFAULT_ALPHA}

# -- baselines (sei.inference.baselines) --------------------------------------------------------------------
# The baselines' settings when the options leave them open (a Wiener strength and TV weight follow the noise level;
# DIP's iterations the kernel: see each class).
BASELINE_DEFAULTS = {"tv_iterations": 100, "rl_iterations": 200, "rl_tv": 0.0, "rl_stop": "discrepancy",
                     "dip_channels": 256, "dip_lr": 1e-2, "bm3d_profile": "np"}

# -- backbones (sei.models.swinir, sei.models.registry) -----------------------------------------------------
CHECKPOINTING = (False, True, "none", "blocks", "alternate")  # see SwinIR's checkpointing parameter
# The paper's SwinIR (embed 180, 6 x 6 blocks, 6 heads, window 8, mlp ratio 2, '1conv').
PAPER_SWINIR = dict(
    img_size=48,
    patch_size=1,
    in_chans=3,
    embed_dim=180,
    depths=(6, 6, 6, 6, 6, 6),
    num_heads=(6, 6, 6, 6, 6, 6),
    window_size=8,
    mlp_ratio=2.0,
    resi_connection="1conv",
)

# -- the demo (sei.demo) ------------------------------------------------------------------------------------
# Two trainings (SEI and supervised), shorter than `sei train`'s default; their duration is measured by
# benchmarks/demo.py (benchmarks/results/demo.json), the one place the README's stated duration is checked against.
DEMO_STEPS = 1000
# The demo's third training: the shipped network (sei.models.pretrained) fine-tuned on the blurry validation
# photographs themselves, as a user fine-tunes it on their own measurements.
DEMO_PRETRAINED = "pretrained:photos-gaussian-r2"
DEMO_FINETUNE_STEPS = 300

# -- export (sei.export) ------------------------------------------------------------------------------------
# The licence of an exported network's weights unless --license says another: trained weights are their authors'
# work, and a Creative Commons licence that asks for attribution (and the paper's citation) is common for shared
# models and data; the weights are not sei's code, so they do not take its BSD licence.
DEFAULT_LICENSE = "CC-BY-4.0"
