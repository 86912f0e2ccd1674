"""The networks that ship with sei (``--weights pretrained:NAME``): recorded, verified, and as good as recorded."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from sei.cli import main
from sei.core.errors import UnknownNameError, WeightsError
from sei.io.download import file_digest
from sei.models import pretrained
from sei.models.pretrained import PREFIX, pretrained_networks, pretrained_path

NETWORKS = pretrained_networks()
MB = 1024 * 1024


def test_networks_ship_and_fit_the_size_limits():
    assert NETWORKS, "no shipped network in sei.models.pretrained's manifest"
    sizes = [network.path.stat().st_size for network in NETWORKS.values()]
    assert max(sizes) <= 5 * MB and sum(sizes) <= 20 * MB


@pytest.mark.parametrize("name", sorted(NETWORKS))
class TestEachShippedNetwork:
    def test_the_record_is_complete_and_the_checksum_matches(self, name):
        network = NETWORKS[name]
        assert file_digest(network.path) == network.sha256
        assert network.train_command.startswith("sei train ") and "--measurements" not in network.train_command
        assert network.pack_command.startswith("python benchmarks/pretrain.py pack ")
        assert network.steps > 0 and network.train_hours > 0 and network.data and network.licences
        payload = torch.load(network.path, map_location="cpu", weights_only=True)
        assert payload["sei_architecture"]["backbone"] == network.backbone
        assert {v.dtype for v in payload["params"].values() if v.is_floating_point()} == {torch.bfloat16}

    def test_it_scores_its_recorded_psnr_on_the_sample_photographs(self, name, tmp_path):
        from sei.inference.evaluation import run_test

        result = run_test("network", PREFIX + name, None, {"data.dataset": "sample"}, out_dir=tmp_path,
                          lpips=False, progress=False)
        network = NETWORKS[name]
        assert result.evaluation.summary["psnr"] == pytest.approx(network.val_psnr, abs=0.01)
        assert result.evaluation.summary["ssim"] == pytest.approx(network.val_ssim, abs=0.001)
        assert result.physics.task == network.task and result.physics.kernel == network.kernel

    def test_it_is_a_starting_point_for_fine_tuning(self, name, tmp_path):
        from sei.config.resolve import resolve
        from sei.config.schema import from_flat

        config = resolve(from_flat({"data.dataset": "sample", "model.weights": PREFIX + name}))
        assert config.model.backbone == NETWORKS[name].backbone


class TestNames:
    def test_an_unknown_name_lists_the_shipped_ones(self):
        with pytest.raises(UnknownNameError, match="sei weights list") as error:
            pretrained_path("pretrained:no-such-network")
        assert all(name in str(error.value) for name in NETWORKS)

    def test_a_changed_file_is_refused(self, tmp_path, monkeypatch):
        name, network = next(iter(NETWORKS.items()))
        shutil.copy(network.path, tmp_path / network.file)
        shutil.copy(network.path.parent / pretrained.MANIFEST, tmp_path / pretrained.MANIFEST)
        with open(tmp_path / network.file, "ab") as file:
            file.write(b"\0")
        monkeypatch.setattr(pretrained, "_folder", lambda: tmp_path)
        with pytest.raises(WeightsError, match="does not match its recorded SHA-256"):
            pretrained_path(PREFIX + name)
        (tmp_path / network.file).unlink()
        with pytest.raises(WeightsError, match="is missing: reinstall sei"):
            pretrained_path(PREFIX + name)

    def test_the_command_line_lists_and_uses_them(self, tmp_path, capsys):
        assert main(["weights", "list"]) == 0
        out = capsys.readouterr().out
        assert all(PREFIX + name in out for name in NETWORKS)
        image = tmp_path / "in.png"
        from sei.io.images import write_image

        write_image(image, torch.rand(3, 40, 52, generator=torch.Generator().manual_seed(0)))
        name = next(iter(NETWORKS))
        assert main(["restore", str(image), str(tmp_path / "out.png"), "--weights", PREFIX + name, "--quiet"]) == 0
        assert (tmp_path / "out.png").is_file()
        assert main(["restore", str(image), str(tmp_path / "other.png"), "--weights", "pretrained:nope"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "pretrained network 'nope'" in err[0]


def test_the_manifest_is_sorted_and_names_existing_files():
    entries = json.loads((Path(pretrained.__file__).parent / pretrained.MANIFEST).read_text())
    assert [e["name"] for e in entries] == sorted(e["name"] for e in entries)
    assert all((Path(pretrained.__file__).parent / e["file"]).is_file() for e in entries)
