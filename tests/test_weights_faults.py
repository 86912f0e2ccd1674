"""Fault injection on weights files and published weights names: an architecture record that would allocate far
more than any preset (or is not a record at all), weights holding NaN, payloads that are not state dicts, and
names the hub does not publish. Each is one clear error of ``sei.core.errors``, raised before anything is built or
downloaded, and the command line reports it in one line with exit status 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from sei.cli import main
from sei.core.errors import ConfigError, UnknownNameError, WeightsError
from sei.models import (
    BACKBONES,
    build_backbone,
    load_backbone,
    read_weights,
    save_weights,
)
from sei.models.hub import KNOWN_NAMES, fetch_weights


@pytest.fixture
def weights(tmp_path) -> Path:
    """A tiny U-Net's weights file, written by ``save_weights``."""
    torch.manual_seed(0)
    return save_weights(build_backbone("unet-tiny"), tmp_path / "weights.pt")


def tampered(weights: Path, change) -> Path:
    """A copy of ``weights`` (beside it, ``bad.pt``) whose payload ``change(payload)`` altered."""
    payload = torch.load(weights, weights_only=True)
    change(payload)
    torch.save(payload, weights.with_name("bad.pt"))
    return weights.with_name("bad.pt")


def with_record(record: Any):
    return lambda payload: payload.__setitem__("sei_architecture", record)


def with_options(options: Any):
    return lambda payload: payload["sei_architecture"].__setitem__("options", options)


def restore(tmp_path: Path, weights: Path, capsys) -> tuple[int, str]:
    """``sei restore`` of a small image with ``weights``: the exit status and what it wrote to stderr."""
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(image)
    code = main(["restore", str(image), str(tmp_path / "out"), "--weights", str(weights), "--quiet"])
    return code, capsys.readouterr().err


@pytest.fixture
def no_build(weights, monkeypatch):
    """Building a U-Net (once ``weights`` is written) fails the test: a refused record must be refused before any
    allocation."""
    def build(*args, **kwargs):
        pytest.fail("a network was built from a refused record")

    monkeypatch.setattr("sei.models.unet.UNet", build)


class TestArchitectureRecord:
    def test_oversized_record_is_refused_before_building(self, weights, no_build):
        path = tampered(weights, with_options({"width": 200000}))
        with pytest.raises(WeightsError) as caught:
            load_backbone(path)
        assert str(caught.value) == (f"weights file {path}: architecture record option 'width' = 200000 is outside "
                                     "1..128 for unet")

    @pytest.mark.parametrize("change, expected", [
        (with_record("unet-tiny"), "architecture record is a str, not a dict"),
        (with_record([1, 2]), "architecture record is a list, not a dict"),
        (with_options(None), "architecture record 'options' is None, not a dict"),
        (with_options("width"), "architecture record 'options' is a str, not a dict"),
        (with_options({"width": True}), "option 'width' = True is not an integer for unet"),
        (with_options({"width": "8"}), "option 'width' = '8' is not an integer for unet"),
        (with_options({"width": 8.0}), "option 'width' = 8.0 is not an integer for unet"),
        (with_options({"width": 0}), "option 'width' = 0 is outside 1..128 for unet"),
        (with_options({"blocks": -1}), "option 'blocks' = -1 is outside 1..4 for unet"),
        (with_options({"levels": 40}), "option 'levels' = 40 is outside 0..3 for unet"),
        (with_options({"colour": 8}), "unknown unet option 'colour'; valid unet options: blocks, levels, width"),
        (lambda p: p["sei_architecture"].update(upscale=10**6), "'upscale' = 1000000 is outside 1..16 for unet"),
        (lambda p: p["sei_architecture"].update(in_chans=3000), "'in_chans' = 3000 is outside 1..16 for unet"),
        (lambda p: p["sei_architecture"].pop("backbone"), "architecture record has no 'backbone'"),
        (lambda p: p["sei_architecture"].update(backbone=7), "'backbone' = 7 is not a backbone name"),
        (lambda p: p["sei_architecture"].update(backbone="resnet"), "unknown backbone 'resnet'"),
        (lambda p: p["sei_architecture"].update(extra=1), "holds unknown entries ['extra']"),
    ])
    def test_malformed_records_are_clear_errors(self, weights, no_build, change, expected):
        path = tampered(weights, change)
        for load in (load_backbone, read_weights):  # read_weights too: it is what reads a record without building
            with pytest.raises(WeightsError) as caught:
                load(path)
            assert str(caught.value).startswith(f"weights file {path}: ") and expected in str(caught.value)

    def test_the_command_line_says_it_in_one_line(self, tmp_path, weights, no_build, capsys):
        code, err = restore(tmp_path, tampered(weights, with_options({"width": 200000})), capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "'width' = 200000 is outside 1..128 for unet" in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()


class TestBuildOptions:
    """The same rules, checked by the same function, for options given to build_backbone."""

    def test_user_options_are_checked_before_building(self, no_build):
        with pytest.raises(ConfigError, match=r"^backbone option 'width' = 200000 is outside 1\.\.128 for unet$"):
            build_backbone("unet-tiny", width=200000)
        with pytest.raises(UnknownNameError, match="unknown unet option 'checkpointing'"):
            build_backbone("unet-small", checkpointing=True)

    @pytest.mark.parametrize("options, expected", [
        ({"depths": (2, 2), "num_heads": (3,)}, "one entry per stage"),
        ({"embed_dim": 25}, "embed_dim 25 is not a multiple of every num_heads"),
        ({"upscale": 5}, "upscale 5 is not 1, 3 or a power of 2"),
        ({"depths": [6] * 9}, "'depths' = [6, 6, 6, 6, 6, 6, ...] is not a list of 1 to 8 values in 1..8"),
        ({"num_heads": (6, 0, 6, 6)}, "'num_heads' = (6, 0, 6, 6) has an entry 0 that is outside 1..24"),
        ({"checkpointing": "sometimes"}, "is not one of False, True, 'none', 'blocks', 'alternate'"),
        ({"mlp_ratio": float("nan")}, "'mlp_ratio' = nan is outside 1..4"),
    ])
    def test_swinir_options_that_deepinv_would_fail_on(self, options, expected):
        with pytest.raises(ConfigError, match="swinir") as caught:
            build_backbone("swinir-small", **options)
        assert expected in str(caught.value)

    def test_options_within_the_rules_still_build(self):
        assert build_backbone("unet-tiny", width=4, levels=0).sei_architecture["options"] == {"width": 4, "levels": 0}
        build_backbone("swinir", embed_dim=12, depths=[2], num_heads=[3], mlp_ratio=2, fused_attention=False)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_preset_lies_inside_its_family_rules(name):
    """The contract the rules keep: every option of every preset is declared by its family and allowed by its rule
    (at every upscale and channel count the project uses: the networks of volumes deblur only), and every rule is a
    non-empty range."""
    from sei.models.registry import Between, Series, check_options

    preset = BACKBONES[name]
    assert set(preset.options) <= set(preset.family.options)
    for upscale in (1, 2, 3, 4) if preset.spatial_dims == 2 else (1,):
        for channels in (1, 3):
            check_options(name, upscale, channels, preset.options)
    for rule in preset.family.options.values():
        bounds = rule.item if isinstance(rule, Series) else rule
        assert not isinstance(bounds, Between) or bounds.low <= bounds.high


class TestWeightsPayload:
    @pytest.mark.parametrize("value", [float("nan"), float("inf")])
    def test_all_nonfinite_weights_are_refused(self, weights, value):
        def poison(payload):
            for tensor in payload["params"].values():
                tensor.fill_(value)

        path = tampered(weights, poison)
        with pytest.raises(WeightsError) as caught:
            load_backbone(path)
        assert str(caught.value).startswith(f"weights file {path} holds NaN or infinite values (in 'head.weight' and ")
        assert "it is not usable: use an earlier checkpoint" in str(caught.value)

    def test_one_nonfinite_value_is_named(self, weights):
        path = tampered(weights, lambda payload: payload["params"]["tail.bias"].__setitem__(0, float("-inf")))
        with pytest.raises(WeightsError, match=r"holds NaN or infinite values \(in 'tail\.bias'\); it is not usable"):
            read_weights(path)

    def test_the_command_line_refuses_nan_weights_and_writes_nothing(self, tmp_path, weights, capsys):
        path = tampered(weights, lambda payload: [t.fill_(float("nan")) for t in payload["params"].values()])
        code, err = restore(tmp_path, path, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "NaN or infinite values" in err
        assert not (tmp_path / "out").exists()

    @pytest.mark.parametrize("change, expected", [
        (lambda payload: payload["params"].__setitem__("head.weight", "abc"),
         "entry 'head.weight' of 'params' is a str, not a tensor"),
        (lambda payload: payload["params"].__setitem__(0, torch.zeros(1)), "entry 0 of 'params' is not named by a string"),
    ])
    def test_entries_that_are_not_named_tensors(self, tmp_path, weights, change, expected, capsys):
        path = tampered(weights, change)
        with pytest.raises(WeightsError, match=expected):
            read_weights(path)
        code, err = restore(tmp_path, path, capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err

    @pytest.mark.parametrize("payload, expected", [([1, 2], "holds a list, not a state dict"),
                                                   ("params", "holds a str, not a state dict"),
                                                   ({"params": "abc"}, "holds no tensors")])
    def test_payloads_that_are_not_state_dicts(self, tmp_path, payload, expected):
        torch.save(payload, tmp_path / "w.pt")
        with pytest.raises(WeightsError, match=expected):
            load_backbone(tmp_path / "w.pt", backbone="unet-tiny", upscale=1)


class TestPublishedNames:
    @pytest.fixture
    def no_network(self, monkeypatch):
        """Any attempt to reach the hub fails the test."""
        def reach(*args, **kwargs):
            pytest.fail("the network was asked about a name that is not a published weights name")

        monkeypatch.setattr("sei.models.hub._offline_reason", reach)
        monkeypatch.setattr("huggingface_hub.hf_hub_download", reach)

    def test_unknown_name_is_unknown_without_the_network(self, tmp_path, no_network):
        with pytest.raises(UnknownNameError) as caught:
            fetch_weights("no_such_weights", download=True, cache_dir=tmp_path)
        message = str(caught.value)
        assert message.startswith("unknown published weights name 'no_such_weights'; valid published weights names: ")
        assert all(name in message for name in KNOWN_NAMES) and "sei weights list --remote" in message
        with pytest.raises(UnknownNameError):  # not "not in the cache: run sei weights fetch no_such_weights"
            fetch_weights("no_such_weights", cache_dir=tmp_path)

    def test_a_name_the_hub_lacks_is_unknown(self, tmp_path, monkeypatch):
        from huggingface_hub.errors import EntryNotFoundError

        def missing(*args, **kwargs):
            raise EntryNotFoundError("404 Client Error: Entry Not Found")

        monkeypatch.setattr("sei.models.hub._offline_reason", lambda: None)
        monkeypatch.setattr("huggingface_hub.hf_hub_download", missing)
        with pytest.raises(UnknownNameError, match="has no file Deblurring_Gaussian_R9_Noise5_SEI.pt"):
            fetch_weights("Deblurring_Gaussian_R9_Noise5_SEI", download=True, cache_dir=tmp_path)

    def test_weights_fetch_command(self, no_network, capsys):
        assert main(["weights", "fetch", "no_such_weights"]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and "download failed" not in err
        assert "unknown published weights name 'no_such_weights'" in err and KNOWN_NAMES[0] in err
