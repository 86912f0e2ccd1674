"""Reconstruction baselines: each kind's shape and applicability, quality against the input, errors."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from sei.inference.baselines import MODEL_KINDS, build_baseline, canonical_kind
from sei.inference.baselines.zero_shot import DeepImagePrior, default_dip_iterations
from sei.cli import main
from sei.core.errors import ConfigError, OptionalDependencyError, ResourceUnavailableError, UnknownNameError
from sei.metrics import psnr
from sei.physics import make_physics

FAST = {"tv_iterations": 20, "dip_iterations": 3, "dip_channels": 8, "progress": False}
DEBLURRING_KINDS = ["identity", "wiener", "tv", "dip", "bm3d"]
SR_KINDS = ["identity", "bicubic", "wiener", "tv", "dip"]


@pytest.fixture
def crop(natural_image) -> torch.Tensor:
    return natural_image[None, :, 16:80, 32:112].contiguous()  # 64 x 80, not square


def measure(physics, x):
    return physics(x, generator=torch.Generator().manual_seed(0))


class TestShapes:
    @pytest.mark.parametrize("kind", DEBLURRING_KINDS)
    def test_deblurring(self, kind, crop):
        physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
        assert build_baseline(kind, physics, FAST)(measure(physics, crop)).shape == crop.shape

    @pytest.mark.parametrize("kernel", [None, "Box_R2"])
    @pytest.mark.parametrize("kind", SR_KINDS)
    def test_super_resolution(self, kind, kernel, crop):
        physics = make_physics("sr", sr_factor=2, kernel=kernel, noise_level=5)
        assert build_baseline(kind, physics, FAST)(measure(physics, crop)).shape == crop.shape

    def test_kinds_that_do_not_apply_say_so(self):
        with pytest.raises(ConfigError, match="does not apply to deblurring"):
            build_baseline("bicubic", make_physics("deblurring", kernel="Box_R2"))
        with pytest.raises(ConfigError, match="does not apply to super-resolution"):
            build_baseline("bm3d", make_physics("sr", sr_factor=2))
        with pytest.raises(UnknownNameError, match="wiener"):
            canonical_kind("landweber")
        assert canonical_kind("up") == "bicubic" and canonical_kind("id") == "identity"
        assert canonical_kind("swinir") == "network" and set(MODEL_KINDS) >= {"pnp", "dip"}


class TestQuality:
    @pytest.mark.parametrize("kernel", ["Gaussian_R2", "Box_R3"])
    @pytest.mark.parametrize("kind", ["wiener", "tv", "bm3d"])
    def test_beats_the_blurry_input(self, kind, kernel, natural_image):
        physics = make_physics("deblurring", kernel=kernel, noise_level=5)
        x = natural_image[None]
        y = measure(physics, x)
        assert psnr(build_baseline(kind, physics)(y), x).item() > psnr(y, x).item() + 1.0

    @pytest.mark.parametrize("kernel", [None, "Gaussian_R1"])  # bicubic, and the PSF then decimation
    def test_super_resolution_wiener_and_tv_beat_nearest_and_bicubic(self, natural_image, kernel):
        physics = make_physics("sr", sr_factor=2, kernel=kernel, noise_level=5)
        x = natural_image[None]
        y = measure(physics, x)
        nearest = psnr(build_baseline("identity", physics)(y), x).item()
        bicubic = psnr(build_baseline("bicubic", physics)(y), x).item()
        for kind in ("wiener", "tv"):
            estimate = build_baseline(kind, physics)(y)
            assert estimate.shape == x.shape
            assert psnr(estimate, x).item() > nearest + 1.0
            if kernel is not None:  # bicubic enlargement knows nothing of the PSF; the model-based ones do
                assert psnr(estimate, x).item() > bicubic

    def test_dip_improves_over_its_first_iterate(self, crop):
        physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
        y = measure(physics, crop)
        first = DeepImagePrior(physics, iterations=1, channels=32, progress=False)(y)
        fitted = DeepImagePrior(physics, iterations=150, channels=32, progress=False)(y)
        assert psnr(fitted, crop).item() > psnr(first, crop).item() + 3.0

    def test_dip_is_seeded(self, crop):
        physics = make_physics("sr", sr_factor=2)
        y = measure(physics, crop)
        a = DeepImagePrior(physics, iterations=2, channels=8, progress=False)(y)
        b = DeepImagePrior(physics, iterations=2, channels=8, progress=False)(y)
        assert torch.equal(a, b)

    def test_dip_default_budgets_follow_the_reference(self):
        assert default_dip_iterations(make_physics("deblurring", kernel="Gaussian_R2")) == 4000
        assert default_dip_iterations(make_physics("deblurring", kernel="Box_R2")) == 1000
        assert default_dip_iterations(make_physics("sr", sr_factor=4)) == 1000


class TestTotalVariationSolver:
    """The lean ADMM/Chambolle-Pock solve is deepinv's (the path it replaces) to float32 solver tolerance."""

    @staticmethod
    def deepinv_tv(physics, weight: float, iterations: int, y: torch.Tensor) -> torch.Tensor:
        from deepinv.optim import optim_builder
        from deepinv.optim.data_fidelity import L2
        from deepinv.optim.prior import TVPrior

        solver = optim_builder(iteration="ADMM", prior=TVPrior(n_it_max=20), data_fidelity=L2(),
                               params_algo={"stepsize": 10.0, "lambda": weight}, max_iter=iterations,
                               early_stop=False)
        with torch.no_grad():
            return solver(y.float(), physics)

    @pytest.mark.parametrize("task", ["deblurring", "sr"])
    def test_matches_deepinv_admm_on_an_awkward_size(self, task, natural_image, tmp_path):
        import numpy as np

        kernel = np.outer(*[np.exp(-(np.arange(15) - 7.0) ** 2 / 8)] * 2)  # a 15x15 Gaussian kernel file
        np.save(tmp_path / "psf.npy", kernel / kernel.sum())
        physics = make_physics(task, kernel=str(tmp_path / "psf.npy"), sr_factor=2 if task == "sr" else None,
                               noise_level=5)
        x = natural_image[None, :, :41 * 2, :47 * 2].contiguous()  # prime-sized measurements for SR
        y = measure(physics, x[..., :41, :47] if task == "deblurring" else x)
        tv = build_baseline("tv", physics, {"tv_iterations": 15})
        assert torch.allclose(tv(y), self.deepinv_tv(physics, tv.weight, 15, y), atol=1e-4)

    def test_each_image_starts_afresh(self, crop):
        # deepinv's TV prox warm-starts from the previous call, so its estimate of an image depended on the image
        # restored before it
        physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=5)
        tv = build_baseline("tv", physics, FAST)
        first, second = measure(physics, crop), measure(physics, crop.flip(-1))
        alone = tv(second)
        tv(first)
        assert torch.equal(tv(second), alone)

    def test_small_solves_run_on_one_thread_and_restore_the_setting(self):
        from sei.inference.baselines.iterative import ELEMENTS_PER_THREAD, solver_threads

        before = torch.get_num_threads()
        with solver_threads(3 * 256 * 410):
            assert torch.get_num_threads() == 1
        with solver_threads(before * ELEMENTS_PER_THREAD):
            assert torch.get_num_threads() == before
        assert torch.get_num_threads() == before


class TestPlugAndPlay:
    def test_missing_denoiser_weights_name_the_file(self, tmp_path, monkeypatch):
        monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
        with pytest.raises(ResourceUnavailableError, match="drunet_deepinv_color_finetune_22k.pth"):
            build_baseline("pnp", make_physics("deblurring", kernel="Box_R2"))
        with pytest.raises(ResourceUnavailableError, match="not found"):
            build_baseline("pnp", make_physics("deblurring", kernel="Box_R2"), {"pnp_weights": str(tmp_path / "x.pth")})

    @pytest.mark.parametrize("task", ["deblurring", "sr"])
    def test_runs_with_a_weights_file(self, task, crop, tmp_path, monkeypatch):
        from deepinv.models import DRUNet

        torch.manual_seed(0)
        path = tmp_path / "drunet.pth"
        torch.save(DRUNet(in_channels=3, out_channels=3, pretrained=None).state_dict(), path)
        physics = make_physics(task, kernel="Box_R2" if task == "deblurring" else None,
                               sr_factor=2 if task == "sr" else None)
        estimate = build_baseline("pnp", physics, {"pnp_weights": str(path)})(measure(physics, crop))
        assert estimate.shape == crop.shape and torch.isfinite(estimate).all()


def test_missing_bm3d_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as if it were not installed
    with pytest.raises(OptionalDependencyError, match="sei\\[bm3d\\]"):
        build_baseline("bm3d", make_physics("deblurring", kernel="Box_R2"))


class TestCommandLine:
    def test_sei_test_with_a_baseline(self, tmp_path, capsys):
        out = tmp_path / "eval"
        assert main(["test", "--model-kind", "wiener", "--kernel", "Box_R3", "--dataset", "sample", "--max-images",
                     "1", "--no-lpips", "--quiet", "--out-dir", str(out)]) == 0
        assert "wiener" in capsys.readouterr().out
        import json

        summary = json.loads((out / "summary.json").read_text())
        assert summary["settings"]["model_kind"] == "wiener" and summary["n"] == 1

    def test_sei_test_scores_16_bit_data_without_8_bit_rounding(self, tmp_path, capsys):
        import json

        from sei.inference.evaluation import metric_data_range
        from sei.io.intensity import integer_map
        from sei.io.images import write_image

        folder = tmp_path / "dim16"
        generator = torch.Generator().manual_seed(0)
        for index in range(2):  # dim images: their detail lies below an 8-bit step
            write_image(folder / f"im{index}.png", 0.002 * torch.rand(1, 40, 40, generator=generator) + 0.3, bits=16)
        out = tmp_path / "eval16"
        assert main(["test", "--model-kind", "identity", "--kernel", "Box_R2", "--noise-level", "0", "--dataset",
                     str(folder), "--no-lpips", "--quiet", "--out-dir", str(out)]) == 0
        assert "uint16 data, its full range" in capsys.readouterr().out
        summary = json.loads((out / "summary.json").read_text())
        assert summary["settings"]["data_range"] == 1.0 and summary["settings"]["intensity"]["dtype"] == "uint16"
        # 8-bit rounding would have made the blur invisible (every pixel rounds to the same level): infinite PSNR
        assert math.isfinite(summary["psnr"]) and summary["psnr"] > 40
        assert metric_data_range(None) is None and metric_data_range(integer_map("uint8")) is None

    def test_reference_spellings_and_missing_weights(self, tmp_path, capsys):
        assert main(["test", "--model_kind", "up", "--task", "sr", "--sr_factor", "2", "--dataset", "sample",
                     "--max-images", "1", "--no-lpips", "--quiet", "--out-dir", str(tmp_path / "up")]) == 0
        assert main(["test", "--model_kind", "swinir", "--dataset", "sample", "--quiet"]) == 2
        assert "needs --weights" in capsys.readouterr().err

    def test_sei_restore_with_a_baseline(self, natural_image, tmp_path):
        from sei.io.images import read_image, write_image

        write_image(tmp_path / "in" / "a.png", natural_image[:, :40, :50])
        assert main(["restore", str(tmp_path / "in"), str(tmp_path / "out"), "--model-kind", "tv", "--kernel",
                     "Box_R2", "--tv-iterations", "10", "--quiet"]) == 0
        assert read_image(tmp_path / "out" / "a.png").shape == (3, 40, 50)
