"""The command line and the package's import cost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sei.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "sei 0.1.0" in capsys.readouterr().out


def test_info_lists_methods_kernels_backbones(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("sei", "supervised", "css", "ei-shift", "ei-rotate", "Gaussian_R2", "Box_R4", "swinir", "unet-small"):
        assert word in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: sei" in capsys.readouterr().out


def test_python_dash_m():
    result = subprocess.run([sys.executable, "-m", "sei", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "sei 0.1.0"


def test_import_is_light():
    # deepinv, lightning and torchvision load only when a submodule that needs them is used
    code = "import sys, sei; print(','.join(m for m in ('deepinv', 'lightning', 'torchvision') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""
    code = "import sei; sei.make_physics; import sys; print('deepinv' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "True"


@pytest.mark.parametrize("command", ["train", "test", "restore", "degrade", "demo", "psf", "report", "weights", "info",
                                     "score", "export"])
def test_every_command_prints_its_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: sei") and ("training method: " in out) == (command == "train")


def test_a_closed_pipe_stops_quietly(monkeypatch, capsys):
    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr("sys.stdout", ClosedPipe())
    assert main(["info"]) == 141
    assert capsys.readouterr().err == ""
