"""Start-up: commands that neither train nor restore stay out of torch, deepinv and Lightning.

Importing them costs seconds (benchmarks/startup.py measures it), so every command's ``--help`` and ``sei weights
list`` must not import them. Each check runs in a fresh interpreter and looks at ``sys.modules``: a test of what is
imported, not of how long it takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "deepinv", "lightning")

# Builds the parser, renders the help of `sei` and of every command and subcommand, then prints which heavy
# packages were imported (and which commands were rendered) as JSON on the last line.
RENDER_EVERY_HELP = """
import argparse, json, sys
from sei.cli import COMMANDS, build_parser

rendered = []

def render(parser, name):
    parser.format_help()
    rendered.append(name)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child, subparser in action.choices.items():
                render(subparser, f"{name} {child}".strip())

render(build_parser(), "")
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules], "rendered": rendered,
                  "commands": list(COMMANDS), "ctypes": "ctypes" in sys.modules}))
"""


def run_python(code: str, environment: dict[str, str] | None = None) -> dict:
    """Run ``code`` (after ``HEAVY = ...``) in a fresh interpreter; the JSON its last line prints."""
    result = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"], capture_output=True, text=True,
                            env=environment, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_commands_help_imports_no_heavy_package():
    found = run_python(RENDER_EVERY_HELP)
    assert found["heavy"] == [], f"rendering --help imported {found['heavy']}"
    assert {"", *found["commands"], "weights list", "weights fetch"} <= set(found["rendered"])
    assert not found["ctypes"], "sei.core.memory imports ctypes only where it calls the C library"


def test_help_quotes_the_defaults_the_code_uses():
    # one home for each quoted default (sei.core.defaults): the modules that use them take them from there
    from sei.cli.options import config_default
    from sei.config.schema import ExperimentConfig
    from sei.core import defaults
    from sei.demo import DEMO_STEPS
    from sei.inference.baselines import BASELINE_DEFAULTS
    from sei.io.images import MAX_PIXELS
    from sei.models.swinir import PAPER_SWINIR
    from sei.physics.spec import DEFAULT_NOISE_LEVEL, resolve_spec

    config = ExperimentConfig()
    for dotted, value in defaults.CONFIG_DEFAULTS.items():
        section, _, name = dotted.partition(".")
        assert config_default(dotted) == value == getattr(getattr(config, section), name), dotted
    assert config_default("train.log_every") == config.train.log_every  # a key no help quotes: from the schema
    from sei.config.recipe import default_crop  # crop and batch size: decided by the recipe, quoted by the help

    assert default_crop() == (defaults.CROP_SIZE, defaults.BATCH_SIZE)
    assert default_crop(3)[1] == defaults.VOLUME_BATCH_SIZE and default_crop(3, (9, 9, 9))[0] == defaults.VOLUME_CROP_SIZE
    assert resolve_spec({"task": "deblurring", "kernel": "Gaussian_R2"}).noise_level == DEFAULT_NOISE_LEVEL
    assert (DEMO_STEPS, BASELINE_DEFAULTS, MAX_PIXELS, PAPER_SWINIR) == (
        defaults.DEMO_STEPS, defaults.BASELINE_DEFAULTS, defaults.MAX_PIXELS, defaults.PAPER_SWINIR)


def test_the_registries_list_without_torch():
    code = """
import json, sys
from sei.losses.registry import METHOD_REGISTRY, methods_help
from sei.models.registry import BACKBONES, CONVOLUTIONAL_LR
from sei.config import recipe
assert methods_help() and BACKBONES and recipe.PAPER_EPOCHS
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules]}))
"""
    assert run_python(code)["heavy"] == []


def test_sei_info_imports_neither_deepinv_nor_lightning():
    code = """
import contextlib, io, json, sys
from sei.cli import main
with contextlib.redirect_stdout(io.StringIO()) as text:
    main(["info"])
assert "Gaussian_R2" in text.getvalue() and "unet-small" in text.getvalue()
print(json.dumps({"heavy": [m for m in HEAVY if m in sys.modules]}))
"""
    assert run_python(code)["heavy"] == ["torch"]  # the device line asks torch; deepinv and Lightning stay out


def test_the_lazy_packages_still_give_every_public_name():
    import sei.config
    import sei.data
    import sei.losses
    import sei.models
    import sei.physics

    for package in (sei.config, sei.losses, sei.models, sei.physics, sei.data):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
    from sei.config import resolve

    assert callable(resolve) and resolve.__name__ == "resolve"  # the function, not its module


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc is a Linux C library")
def test_is_glibc_asks_the_c_library():
    import platform

    from sei.core.memory import is_glibc

    assert is_glibc() == (platform.libc_ver()[0] == "glibc")


# -- sei weights list: which published weights are cached --------------------------------------------------------
CACHED = "Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI"


def hub_cache_holding(cache: Path, name: str) -> Path:
    """A Hugging Face hub cache laid out as huggingface_hub writes it, holding ``name``.pt of the weights repo."""
    from sei.models.hub import HUB_REPO

    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "a1b2c3").write_bytes(b"not really weights")
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / f"{name}.pt").symlink_to(Path("../../blobs/a1b2c3"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return cache


def test_weights_table_marks_cached_names():
    from sei.cli.weights import weights_table

    other = "Deblurring_Gaussian_R2_Noise5_Proposed"
    header, first, second = weights_table([CACHED, other], {CACHED})
    assert header.split() == ["name", "cached", "settings"]
    assert first.split()[:2] == [CACHED, "yes"] and "Gaussian_R2 deblurring" in first
    assert second.split()[:2] == [other, "no"]
    assert first.index("yes") == second.index("no") == header.index("cached")  # one column


@pytest.mark.skipif(os.name == "nt", reason="the hub cache holds symbolic links")
def test_weights_list_shows_the_cache_without_heavy_packages(tmp_path):
    cache = hub_cache_holding(tmp_path / "hub", CACHED)
    environment = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    code = """
import contextlib, io, json, sys
from sei.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(["weights", "list"])
print(json.dumps({"code": code, "out": out.getvalue(), "heavy": [m for m in HEAVY if m in sys.modules]}))
"""
    found = run_python(code, environment)
    assert found["code"] == 0 and found["heavy"] == []
    rows = {line.split()[0]: line.split()[1] for line in found["out"].splitlines() if line.startswith("  ")}
    assert rows[CACHED] == "yes" and rows["Deblurring_Gaussian_R2_Noise5_Proposed"] == "no"
    assert str(cache) in found["out"]
