"""The layers import only downwards: import-linter's layers contract of pyproject.toml, kept on every test run."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def lint_imports(source: Path | None = None, cwd: Path = ROOT):
    """import-linter on ``source`` (a folder holding ``sei``; default: the installed package), in its own process:
    it configures logging, which would silence the other tests' loggers."""
    import os
    import subprocess
    import sys

    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, no_cache=True, no_logo=True))")
    env = {**os.environ, **({"PYTHONPATH": str(source)} if source else {})}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env)


def test_the_layers_contract_is_kept():
    result = lint_imports()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_names_every_top_level_part_of_sei():
    import tomllib

    import sei

    layers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    parts = {f"sei.{path.stem}" for path in Path(sei.__file__).parent.iterdir()
             if (path.is_dir() and (path / "__init__.py").is_file()) or (path.suffix == ".py" and not
                                                                         path.stem.startswith("_"))}
    assert parts == named, "every module and package of sei sits in exactly one layer"


@pytest.mark.parametrize("lower, upper", [("sei.core.rng", "sei.training"), ("sei.physics.spec", "sei.config")])
def test_an_upward_import_breaks_it(tmp_path, lower, upper):
    """The contract can fail: a copy of the tree with one upward import is refused."""
    import shutil

    tree = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "sei", tree / "sei", ignore=shutil.ignore_patterns("__pycache__"))
    module = tree / Path(*lower.split(".")).with_suffix(".py")
    module.write_text(module.read_text() + f"\n\ndef _upwards():\n    import {upper}  # noqa: F401\n")
    result = lint_imports(tree, cwd=tmp_path)
    assert result.returncode != 0 and f"{lower} -> {upper}" in result.stdout, result.stdout + result.stderr


def test_nothing_but_the_plugin_imports_napari():
    """The napari plugin is an optional extra: sei, its command line and the plugin package itself import neither
    napari nor Qt (only the plugin's widgets do)."""
    import subprocess
    import sys

    code = ("import sys, sei, sei.cli, sei.napari, sei.napari.jobs, sei.napari.sample_data; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', "
            "'PySide6', 'magicgui'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
