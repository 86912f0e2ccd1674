"""``sei export --format bioimageio``: a tiny run of dim 16-bit measurements becomes a BioImage Model Zoo package that
passes the zoo's own test (``bioimageio.core.test_model``), reproduces what ``sei restore`` writes, and that ``sei
restore --weights PACKAGE.zip`` reads back; what cannot be exported is refused in one line."""

from __future__ import annotations

import ast
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from sei.cli import main

RUN_FLAGS = ["--model", "unet-tiny", "--batch-size", "2", "--crop-size", "24", "--samples-per-epoch", "2",
             "--steps", "2", "--quiet"]


def dim_measurements(folder: Path) -> Path:
    """Two 72x80 16-bit images of a few thousand counts (dim: their run maps them by their robust range, not the
    dtype's) blurred by Gaussian_R1, with read noise."""
    from sei.physics.spec import PhysicsSpec

    folder.mkdir(parents=True)
    blur = PhysicsSpec(kernel="Gaussian_R1", noise_level=0).build()
    rng = np.random.default_rng(0)
    for index in range(2):
        x = torch.nn.functional.interpolate(torch.from_numpy(rng.random((1, 1, 10, 10))).float(), size=(72, 80),
                                            mode="bilinear", align_corners=False)
        y = blur.A(x)[0, 0].numpy() * 2000 + 100 + rng.normal(0, 20, (72, 80))
        tifffile.imwrite(folder / f"cell{index}.tif", np.clip(y, 0, 65535).astype(np.uint16))
    return folder


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export")
    measurements = dim_measurements(root / "cells")
    assert main(["train", "--measurements", str(measurements), "--kernel", "Gaussian_R1", *RUN_FLAGS,
                 "--out-dir", str(root / "run")]) == 0
    return root / "run"


@pytest.fixture(scope="module")
def package(run) -> Path:
    pytest.importorskip("bioimageio.core")
    path = run.parent / "cells.zip"
    assert main(["export", str(run), str(path), "--author", "Ada Lovelace"]) == 0
    return path


def member(package: Path, name: str) -> bytes:
    with zipfile.ZipFile(package) as archive:
        return archive.read(name)


def test_the_package_passes_the_zoos_own_test(package):
    from bioimageio.core import test_model

    summary = test_model(package)
    assert summary.status == "passed", summary.format()
    tested = " ".join(detail.name for detail in summary.details)
    assert "(pytorch_state_dict)" in tested and "(torchscript)" in tested  # both weight formats reproduce it


def test_the_description_says_what_the_network_restores_in_the_datas_units(package, run):
    import yaml
    from bioimageio.spec import load_model_description
    from bioimageio.spec.model.v0_5 import ModelDescr

    from sei.config.run_folder import RunFolder

    description = load_model_description(package)
    assert isinstance(description, ModelDescr)
    assert description.format_version == ModelDescr.implemented_format_version  # the current 0.5 format
    (inputs,), (outputs,) = description.inputs, description.outputs
    assert [str(axis.id) for axis in inputs.axes] == ["batch", "channel", "y", "x"]
    assert inputs.axes[2].size.min % 4 == 0 and inputs.axes[2].size.step == 4  # unet-tiny's grid
    assert outputs.axes[2].halo == 16
    mapping = RunFolder(run).config.data.intensity
    assert mapping["dtype"] == "uint16" and mapping["scale"] < 10000  # dim data: their own range
    scale = next(step for step in inputs.preprocessing if step.id == "scale_linear").kwargs
    back = next(step for step in outputs.postprocessing if step.id == "scale_linear").kwargs
    assert scale.gain == pytest.approx(1 / mapping["scale"]) and back.gain == pytest.approx(mapping["scale"])
    assert scale.offset == pytest.approx(-mapping["offset"] / mapping["scale"]) and back.offset == mapping["offset"]
    assert str(description.cite[0].doi) == "10.48550/arXiv.2312.11232" and "Scale-Equivariant" in description.cite[0].text
    assert str(description.license) == "CC-BY-4.0" and [a.name for a in description.authors] == ["Ada Lovelace"]
    record = yaml.safe_load(member(package, "rdf.yaml"))["config"]["sei"]
    assert record["architecture"]["backbone"] == "unet-tiny" and record["intensity"] == mapping
    readme = member(package, "README.md").decode()
    assert "Gaussian_R1 deblurring" in readme and "## Validation" in readme and "cell0.tif" in readme
    from PIL import Image

    cover = Image.open(io.BytesIO(member(package, "cover.png")))
    assert cover.size[0] == 2 * cover.size[1]  # input | output


def test_the_test_output_is_what_sei_restore_writes(package, run, tmp_path):
    test_input = np.load(io.BytesIO(member(package, "test_input.npy")))
    test_output = np.load(io.BytesIO(member(package, "test_output.npy")))
    assert test_input.dtype == np.uint16 and test_output.dtype == np.float32 and test_input.shape == (1, 1, 64, 64)
    tifffile.imwrite(tmp_path / "crop.tif", test_input[0, 0])
    # the package runs the network once: sei restore's single pass (its default on images is an ensemble)
    assert main(["restore", str(tmp_path / "crop.tif"), str(tmp_path / "restored.tif"), "--weights", str(run),
                 "--no-ensemble", "--quiet"]) == 0
    restored = tifffile.imread(tmp_path / "restored.tif")
    assert restored.dtype == np.uint16
    # the package returns the float estimate, sei writes it rounded to the file's integers
    assert np.abs(restored - test_output[0, 0].astype(np.float64)).max() <= 0.5 + 1e-3


def test_sei_restore_reads_the_package_back(package, run, tmp_path, capsys):
    source = next((run.parent / "cells").iterdir())
    for weights, name in ((run, "from_run.tif"), (package, "from_package.tif")):
        assert main(["restore", str(source), str(tmp_path / name), "--weights", str(weights), "--quiet"]) == 0
    assert f"from the network's record ({package})" in capsys.readouterr().out  # its operator
    assert np.array_equal(tifffile.imread(tmp_path / "from_run.tif"), tifffile.imread(tmp_path / "from_package.tif"))


def test_a_zoo_runner_restores_a_whole_file_as_sei_does_away_from_its_borders(package, run, tmp_path):
    # bioimageio.core's predict, whole and in tiles: the data's units in and out; within the halo of the image's
    # border it sees mirrored context (the halo is padded), which sei restore does not add
    from bioimageio.core import Tensor, predict

    source = sorted((run.parent / "cells").iterdir())[1]
    image = tifffile.imread(source)
    inputs = {"input": Tensor.from_numpy(image[None, None], dims=("batch", "channel", "y", "x"))}
    whole = predict(model=package, inputs=inputs).members["output"].data.values[0, 0]
    tiled = predict(model=package, inputs=inputs, blocksize_parameter=6).members["output"].data.values[0, 0]
    assert main(["restore", str(source), str(tmp_path / "restored.tif"), "--weights", str(package), "--no-ensemble",
                 "--quiet"]) == 0
    restored = tifffile.imread(tmp_path / "restored.tif").astype(np.float64)
    inside = (slice(16, -16), slice(16, -16))
    assert np.abs(whole - tiled).max() < 0.05 and np.abs(whole[inside] - restored[inside]).max() <= 0.5 + 1e-3


def test_the_package_is_read_without_bioimageio(package):
    from sei.models.weights import load_backbone, read_intensity, read_physics

    network = load_backbone(package)
    assert network.sei_architecture["backbone"] == "unet-tiny"
    assert read_physics(package).kernel == "Gaussian_R1" and read_intensity(package)["dtype"] == "uint16"


@pytest.mark.parametrize("case, message", [
    ("no weights", "holds no weights.pt; is it a finished training run?"),
    ("exists", "already exist"),
    ("not a zip", "a BioImage Model Zoo package is a .zip file"),
    ("licence", "is not an SPDX licence identifier"),
])
def test_bad_input_is_refused_in_one_line(package, run, tmp_path, capsys, case, message):
    arguments = {"no weights": [str(tmp_path), str(tmp_path / "p.zip")],
                 "exists": [str(run), str(package)],
                 "not a zip": [str(run), str(tmp_path / "p.tar")],
                 "licence": [str(run), str(tmp_path / "p.zip"), "--license", "free-for-all"]}[case]
    assert main(["export", *arguments, "--author", "A B"]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "p.zip").exists()


def test_a_backbone_that_does_not_export_is_refused(run, tmp_path, capsys):
    import shutil

    from sei.models import build_backbone, save_weights

    other = tmp_path / "swinir_run"
    shutil.copytree(run, other, ignore=shutil.ignore_patterns("checkpoints", "logs"))
    save_weights(build_backbone("swinir-small", in_chans=1, embed_dim=12, depths=[1], num_heads=[2]),
                 other / "weights.pt")
    assert main(["export", str(other), str(tmp_path / "p.zip"), "--author", "A B"]) == 2
    assert "backbone 'swinir-small' does not export to the BioImage Model Zoo yet" in capsys.readouterr().err


def test_without_the_extra_export_says_how_to_install_it(run, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bioimageio", None)  # as if not installed
    assert main(["export", str(run), str(tmp_path / "p.zip"), "--author", "A B"]) == 2
    assert "pip install 'sei[bioimageio]'" in capsys.readouterr().err


def test_a_package_without_a_state_dict_is_read_from_its_torchscript(package, tmp_path):
    import yaml

    from sei.models.weights import load_backbone

    description = yaml.safe_load(member(package, "rdf.yaml"))
    del description["weights"]["pytorch_state_dict"]
    with zipfile.ZipFile(package) as source, zipfile.ZipFile(tmp_path / "torchscript.zip", "w") as target:
        for name in source.namelist():
            data = yaml.safe_dump(description).encode() if name == "rdf.yaml" else source.read(name)
            target.writestr(name, data)
    x = torch.rand(1, 1, 40, 44)
    with torch.no_grad():
        assert torch.equal(load_backbone(tmp_path / "torchscript.zip")(x), load_backbone(package)(x))


@pytest.mark.parametrize("flags, message", [(["--format", "onnx"], "invalid choice: 'onnx'"),
                                            ([], "the following arguments are required: --author")])
def test_an_unknown_format_or_no_author_is_refused_by_the_parser(tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(tmp_path), str(tmp_path / "p.zip"), *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_package_sei_did_not_export_is_refused(tmp_path, capsys):
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
        archive.writestr("rdf.yaml", "type: model\nname: someone else's\nconfig: {}\n")
    image = tmp_path / "image.tif"
    tifffile.imwrite(image, np.zeros((16, 16), np.uint16))
    assert main(["restore", str(image), str(tmp_path / "out.tif"), "--weights", str(tmp_path / "other.zip")]) == 2
    assert "was not exported by sei" in capsys.readouterr().err


@pytest.mark.parametrize("spatial_dims, upscale", [(2, 1), (3, 1), (2, 2), (3, 2)])
def test_the_exported_architecture_is_seis_unet_without_sei(spatial_dims, upscale):
    from sei.export.bioimageio import architecture_source
    from sei.models.unet import UNet

    source = architecture_source()
    nodes = list(ast.walk(ast.parse(source)))
    modules = ({alias.name for node in nodes if isinstance(node, ast.Import) for alias in node.names}
               | {node.module for node in nodes if isinstance(node, ast.ImportFrom)})
    assert {name.split(".")[0] for name in modules} == {"__future__", "collections", "math", "torch"}  # no sei
    namespace: dict = {}
    exec(compile(source, "sei_unet.py", "exec"), namespace)
    kwargs = dict(upscale=upscale, in_chans=1, width=4, levels=1, blocks=1, spatial_dims=spatial_dims)
    torch.manual_seed(0)
    ours = UNet(**kwargs).eval()
    ours.tail.reset_parameters()  # an untrained U-Net is the identity
    theirs = namespace["UNet"](**kwargs).eval()
    theirs.load_state_dict(ours.state_dict())
    x = torch.rand(1, 1, *(6,) * (spatial_dims - 2), 10, 14)  # off the grid: the aligned windows too
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_only_the_exporter_imports_bioimageio():
    # reading a package back (sei restore) needs zip, YAML and torch only; the exporter imports it when it writes
    import sei

    root = Path(sei.__file__).parent
    found = {}
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text())
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(name.split(".")[0] == "bioimageio" for name in names):
                found.setdefault(str(path.relative_to(root)), []).append(id(node) in top_level)
    assert set(found) == {"export/bioimageio.py"} and not any(found["export/bioimageio.py"])


def test_a_volume_run_exports_with_a_z_axis_and_its_psf(tmp_path):
    pytest.importorskip("bioimageio.core")
    from bioimageio.core import test_model
    from bioimageio.spec import load_model_description

    from sei.physics.kernels import write_kernel

    rng = np.random.default_rng(1)
    (tmp_path / "stacks").mkdir()
    stack = rng.poisson(200, (12, 40, 40)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stacks" / "cells.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    psf = torch.ones(3, 5, 5)
    write_kernel(psf, tmp_path / "psf.npy")
    assert main(["train", "--measurements", str(tmp_path / "stacks"), "--kernel", str(tmp_path / "psf.npy"),
                 "--noise-level", "3", "--steps", "1", "--crop-size", "12", "--batch-size", "1", "--quiet",
                 "--out-dir", str(tmp_path / "run")]) == 0
    package = tmp_path / "stack.zip"
    assert main(["export", str(tmp_path / "run"), str(package), "--author", "A B", "--license", "MIT"]) == 0
    description = load_model_description(package)
    assert [str(axis.id) for axis in description.inputs[0].axes] == ["batch", "channel", "z", "y", "x"]
    assert np.load(io.BytesIO(member(package, "test_input.npy"))).shape == (1, 1, 12, 40, 40)
    kernel = np.load(io.BytesIO(member(package, "psf.npy")))
    assert np.allclose(kernel, psf.numpy() / psf.sum().item())  # attached, normalised as sei reads it
    summary = test_model(package, weight_format="torchscript")
    assert summary.status == "passed", summary.format()


def test_an_axial_super_resolution_run_exports_with_z_scaled(tmp_path):
    """A run that restores r times the planes (sei.core.scaling): the output's z axis is the input's scaled by 1/r,
    its planes keep their pixels, and the zoo's own test passes."""
    pytest.importorskip("bioimageio.core")
    from bioimageio.core import test_model
    from bioimageio.spec import load_model_description

    from sei.physics.kernels import write_kernel

    rng = np.random.default_rng(2)
    (tmp_path / "stacks").mkdir()
    tifffile.imwrite(tmp_path / "stacks" / "cells.tif", rng.poisson(200, (12, 40, 40)).astype(np.uint16),
                     imagej=True, metadata={"axes": "ZYX"})
    write_kernel(torch.ones(5, 5, 5), tmp_path / "psf.npy")
    assert main(["train", "--measurements", str(tmp_path / "stacks"), "--kernel", str(tmp_path / "psf.npy"),
                 "--task", "sr", "--sr-factor", "2", "--noise-level", "3", "--steps", "1", "--crop-size", "12",
                 "--batch-size", "1", "--quiet", "--out-dir", str(tmp_path / "run")]) == 0
    package = tmp_path / "axial.zip"
    assert main(["export", str(tmp_path / "run"), str(package), "--author", "A B", "--license", "MIT"]) == 0
    output = load_model_description(package).outputs[0]
    scales = {str(axis.id): axis.scale for axis in output.axes if str(axis.id) in ("z", "y", "x")}
    assert scales == {"z": 0.5, "y": 1.0, "x": 1.0}
    assert np.load(io.BytesIO(member(package, "test_output.npy"))).shape == (1, 1, 24, 40, 40)
    summary = test_model(package, weight_format="torchscript")
    assert summary.status == "passed", summary.format()
