"""The user's commands: restore, degrade, published weights, report, and the quick demo."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from sei.cli import main
from sei.core.errors import ResourceUnavailableError, WeightsError
from sei.models.hub import HUB_REPO, cached_names, fetch_weights, parse_name, resolve_weights
from sei.io.images import read_image
from sei.models import build_backbone, save_weights


@pytest.fixture
def weights(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_weights(build_backbone("unet-tiny"), tmp_path / "weights.pt")


@pytest.fixture
def perturbed_weights(tmp_path) -> Path:
    """A tiny network that is no longer the identity it starts as, so that its precision shows in its outputs."""
    torch.manual_seed(0)
    network = build_backbone("unet-tiny")
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return save_weights(network, tmp_path / "perturbed.pt")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (37, 61, 3), dtype=np.uint8)).save(folder / "colour.png")
    Image.fromarray(rng.integers(0, 256, (50, 40), dtype=np.uint8)).save(folder / "gray.png")
    rgba = rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(folder / "alpha.png")
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(folder / "photo.jpg")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return folder


class TestRestore:
    def test_folder_with_every_layout_and_a_bad_file(self, photos, weights, tmp_path, capsys):
        out = tmp_path / "restored"
        code = main(["restore", str(photos), str(out), "--weights", str(weights), "--quiet", "--tile", "32",
                     "--overlap", "8"])
        assert code == 1  # one file failed, the others were restored
        assert "corrupt.png" in capsys.readouterr().err
        assert sorted(p.name for p in out.iterdir()) == ["alpha.png", "colour.png", "gray.png", "photo.png",
                                                            "restore.json"]
        assert read_image(out / "colour.png", channels=None).shape == (3, 37, 61)
        assert read_image(out / "gray.png", channels=None).shape == (1, 50, 40)
        restored = read_image(out / "alpha.png", channels=None)
        assert restored.shape == (4, 30, 30)
        assert torch.allclose(restored[3], read_image(photos / "alpha.png", channels=None)[3], atol=1 / 255)

    def test_identity_network_preserves_the_image(self, photos, weights, tmp_path):
        # the U-Net starts as the identity: restoring with untrained weights must give back the input
        main(["restore", str(photos / "colour.png"), str(tmp_path / "o.png"), "--weights", str(weights), "--quiet"])
        assert torch.allclose(read_image(tmp_path / "o.png"), read_image(photos / "colour.png"), atol=1 / 255)

    def test_sixteen_bit_super_resolution(self, photos, tmp_path):
        path = save_weights(build_backbone("unet-tiny", upscale=2), tmp_path / "sr.pt")
        main(["restore", str(photos / "gray.png"), str(tmp_path / "out"), "--weights", str(path), "--bits", "16",
              "--quiet"])
        with Image.open(tmp_path / "out" / "gray.png") as image:
            assert image.size == (80, 100) and image.mode.startswith("I")

    def test_self_ensemble(self, photos, weights, tmp_path, capsys):
        colour = str(photos / "colour.png")
        # the identity network is equivariant: the ensemble gives back the input too
        assert main(["restore", colour, str(tmp_path / "e.png"), "--weights", str(weights), "--kernel", "Box_R2",
                     "--ensemble", "--quiet"]) == 0
        assert torch.allclose(read_image(tmp_path / "e.png"), read_image(photos / "colour.png"), atol=1 / 255)
        # a kernel with no flip or rotation symmetry (a straight motion blur has one: a half-turn): a plain network
        # cannot be ensembled, and is told so
        kernel = np.zeros((7, 7), np.float32)
        kernel[3, 3:] = 1.0  # an L of unequal arms
        kernel[4:6, 3] = 1.0
        np.save(tmp_path / "motion.npy", kernel)
        assert main(["restore", colour, str(tmp_path / "m.png"), "--weights", str(weights), "--kernel",
                     str(tmp_path / "motion.npy"), "--ensemble", "--quiet"]) == 2
        assert "self-ensemble" in capsys.readouterr().err
        # and an ensemble needs to know the operator
        assert main(["restore", colour, str(tmp_path / "n.png"), "--weights", str(weights), "--ensemble",
                     "--quiet"]) == 2

    def test_bf16_precision_stays_within_grey_levels_of_float32(self, photos, perturbed_weights, tmp_path):
        weights = perturbed_weights
        for precision in ("32-true", "bf16-mixed"):  # tiled, so that tiles are blended from bf16 estimates
            assert main(["restore", str(photos / "colour.png"), str(tmp_path / f"{precision}.png"), "--weights",
                         str(weights), "--precision", precision, "--tile", "32", "--overlap", "8", "--quiet"]) == 0
        exact, fast = (read_image(tmp_path / f"{precision}.png") for precision in ("32-true", "bf16-mixed"))
        assert not torch.equal(exact, fast)  # the network did compute in bf16
        assert (exact - fast).abs().max() <= 4 / 255

    @pytest.mark.parametrize("native", [True, False])
    def test_auto_precision_is_bf16_for_8bit_data_where_native(self, photos, perturbed_weights, tmp_path, capsys,
                                                              monkeypatch, native):
        import tifffile

        monkeypatch.setattr("sei.config.recipe.has_native_bf16", lambda device: native)
        weights = str(perturbed_weights)
        colour = photos / "colour.png"
        tifffile.imwrite(tmp_path / "deep.tif", np.asarray(Image.open(colour)).astype(np.uint16) * 257)
        for name, source, extra in [("auto", colour, []), ("bits16", colour, ["--bits", "16"]),
                                    ("deep", tmp_path / "deep.tif", [])]:
            assert main(["restore", str(source), str(tmp_path / f"{name}_auto{source.suffix}"), "--weights", weights,
                         "--quiet", *extra]) == 0
            chosen = "bf16-mixed" if native and name == "auto" else "32-true"
            assert f"precision: {chosen} (" in capsys.readouterr().out
            assert main(["restore", str(source), str(tmp_path / f"{name}_explicit{source.suffix}"), "--weights",
                         weights, "--quiet", "--precision", chosen, *extra]) == 0
            assert torch.equal(read_image(tmp_path / f"{name}_auto{source.suffix}"),
                               read_image(tmp_path / f"{name}_explicit{source.suffix}"))
        # a baseline computes in its own precision: auto is not an error for it
        assert main(["restore", str(colour), str(tmp_path / "tv.png"), "--model-kind", "tv", "--kernel", "Box_R2",
                     "--quiet"]) == 0

    def test_precision_is_checked(self, photos, weights, tmp_path, capsys):
        colour = str(photos / "colour.png")
        with pytest.raises(SystemExit) as parsed:
            main(["restore", colour, str(tmp_path / "a.png"), "--weights", str(weights), "--precision", "fp8",
                  "--quiet"])
        assert parsed.value.code == 2 and "'auto', '32-true', 'bf16-mixed'" in capsys.readouterr().err
        assert main(["restore", colour, str(tmp_path / "b.png"), "--model-kind", "tv", "--kernel", "Box_R2",
                     "--precision", "bf16-mixed", "--quiet"]) == 2
        assert "trained networks" in capsys.readouterr().err
        assert not (tmp_path / "a.png").exists() and not (tmp_path / "b.png").exists()

    def test_refuses_to_overwrite_inputs(self, photos, weights, capsys):
        assert main(["restore", str(photos), str(photos), "--weights", str(weights), "--quiet"]) == 2
        assert "overwrite" in capsys.readouterr().err


class TestDegrade:
    def test_blur_with_seeded_noise(self, photos, tmp_path):
        shutil.copy(photos / "colour.png", tmp_path / "clean.png")
        first, second = tmp_path / "a", tmp_path / "b"
        for out in (first, second):
            assert main(["degrade", str(tmp_path / "clean.png"), str(out), "--kernel", "Box_R2", "--noise-level",
                         "10", "--seed", "3", "--quiet"]) == 0
        assert (first / "clean.png").read_bytes() == (second / "clean.png").read_bytes()
        settings = yaml.safe_load((first / "degradation.yaml").read_text())
        assert settings["kernel"] == "Box_R2" and settings["noise_level"] == 10 and settings["images"] == 1

    def test_super_resolution_folder(self, photos, tmp_path):
        out = tmp_path / "low"
        assert main(["degrade", str(photos), str(out), "--task", "sr", "--sr-factor", "2", "--bits", "16",
                     "--quiet"]) == 1  # the corrupt file is reported
        assert read_image(out / "colour.png").shape == (3, 18, 30)
        assert yaml.safe_load((out / "degradation.yaml").read_text())["images"] == 4


def make_hub_cache(cache: Path, name: str, payload_path: Path) -> None:
    """A Hugging Face cache laid out as huggingface_hub writes it, holding one file of the weights repo."""
    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    blob = repo / "blobs" / "a1b2c3"
    blob.parent.mkdir(parents=True)
    shutil.copy(payload_path, blob)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / f"{name}.pt").symlink_to(Path("../../blobs/a1b2c3"))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)


class TestPublishedWeights:
    NAME = "Div2K-Train_Deblurring_Gaussian_R2_Noise5_SEI"

    def test_names_describe_their_settings(self):
        info = parse_name(self.NAME)
        assert (info.task, info.kernel, info.noise_level, info.method, info.dataset) == \
            ("deblurring", "Gaussian_R2", 5.0, "sei", "Div2K")
        assert parse_name("Deblurring_Box_R3_Noise5_Proposed").method == "sei"
        assert parse_name("SR_x2_Noise5_Supervised").sr_factor == 2
        assert parse_name("weights.pt") is None

    def test_offline_from_a_local_cache(self, tmp_path):
        torch.manual_seed(0)
        model = build_backbone("swinir-small", upscale=1)
        torch.save({"params": model.state_dict()}, tmp_path / "payload.pt")
        cache = tmp_path / "hub"
        make_hub_cache(cache, self.NAME, tmp_path / "payload.pt")
        path = fetch_weights(self.NAME, cache_dir=cache)
        assert torch.load(path, weights_only=True)["params"].keys() == model.state_dict().keys()
        assert cached_names(cache) == [self.NAME]
        resolved, info = resolve_weights(self.NAME, cache_dir=cache)
        assert resolved == path and info.kernel == "Gaussian_R2"

    def test_missing_weights_say_what_to_do(self, tmp_path):
        with pytest.raises(ResourceUnavailableError, match="sei weights fetch"):
            fetch_weights(self.NAME, cache_dir=tmp_path / "empty")
        with pytest.raises(WeightsError, match="not a published weights name"):
            resolve_weights("no_such_weights_anywhere")

    def test_weights_list_command(self, capsys):
        assert main(["weights", "list"]) == 0
        out = capsys.readouterr().out
        assert self.NAME in out and "Gaussian_R2 deblurring" in out


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    from sei.demo import run_demo

    return run_demo(tmp_path_factory.mktemp("demo"), quick=True, device="cpu", progress=False)


class TestReportAndDemo:
    def test_quick_demo(self, demo):
        rows = {"input", "tv", "sei", "supervised", "shipped", "sei-finetuned"}  # BM3D joins them in the full demo
        assert set(demo.summaries) == rows
        assert demo.best_classical == "tv"
        summary = json.loads((demo.out_dir / "demo_summary.json").read_text())
        assert summary["quick"] and set(summary["psnr"]) == rows and summary["finetune_steps"] == 6
        # the shipped network restores before any training: far above the blurry input
        assert demo.summaries["shipped"]["psnr"] > demo.summaries["input"]["psnr"] + 1
        assert (demo.out_dir / "eval" / "sei" / "images").is_dir()

    def test_demo_reuses_finished_runs(self, demo):
        from sei.demo import run_demo

        before = (demo.out_dir / "sei" / "weights.pt").stat().st_mtime_ns
        run_demo(demo.out_dir, quick=True, device="cpu", progress=False)
        assert (demo.out_dir / "sei" / "weights.pt").stat().st_mtime_ns == before

    def test_report_content(self, demo, tmp_path):
        out = tmp_path / "report.html"
        assert main(["report", str(demo.out_dir), "--out", str(out)]) == 0
        page = out.read_text()
        assert page.count("<img") >= 3 and page.count("data:image/png;base64,") == page.count("<img")
        for text in ("Metrics", "demo_sei", "demo_supervised", "train/equivariance", "supervised"):
            assert text in page

    def test_report_renders_in_headless_chromium(self, demo, tmp_path):
        chromium = find_chromium()
        if chromium is None:
            pytest.skip("chromium is not installed (CI installs Debian's chromium)")
        page = tmp_path / "report.html"
        main(["report", str(demo.out_dir), "--out", str(page)])
        shot = tmp_path / "shot.png"
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1300,4000",
                        f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
        pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
        # the training curves' line colour and the error maps' colour map are only there if the images loaded
        line = np.abs(pixels - np.array([0x1F, 0x5F, 0x8B])).sum(1) < 30
        assert line.sum() > 200
        assert len(np.unique(pixels[::7], axis=0)) > 500

    def test_report_without_anything_to_report(self, tmp_path, capsys):
        assert main(["report", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
        assert "found no training run" in capsys.readouterr().err
