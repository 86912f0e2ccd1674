"""One physics spec: canonical names, one place for defaults, read from YAML, weights, measurement folders,
and the same operator everywhere (train, test, restore, degrade), including any deepinv operator from Python."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from sei.cli import main
from sei.config.schema import from_flat
from sei.core.errors import ConfigError, UnknownNameError
from sei.models import build_backbone
from sei.models.weights import read_physics
from sei.physics import BlurDownsampling, PhysicsSpec, resolve_spec
from sei.physics.psf import motion_psf
from sei.training import train

TINY = {"data.dataset": "sample", "model.backbone": "unet-tiny", "data.batch_size": 2, "data.crop_size": 24,
        "data.samples_per_epoch": 4, "train.progress": False, "train.steps": 2}
TINY_FLAGS = ["--model", "unet-tiny", "--batch-size", "2", "--crop-size", "24", "--samples-per-epoch", "4",
              "--quiet", "--steps", "2"]


@pytest.fixture
def psf_file(tmp_path) -> Path:
    path = tmp_path / "psf" / "motion.npy"
    path.parent.mkdir()
    np.save(path, motion_psf(7, 30).numpy())
    return path


class TestResolve:
    def test_canonical_names_and_defaults(self):
        spec = resolve_spec(PhysicsSpec(task="Deblur", kernel="gaussian_r2"))
        assert (spec.task, spec.kernel, spec.noise_level, spec.noise) == ("deblurring", "Gaussian_R2", 5.0, "gaussian")
        assert resolve_spec(PhysicsSpec(), default_kernel="Gaussian_R2").kernel == "Gaussian_R2"
        assert resolve_spec({"task": "sr", "sr_factor": "3"}).sr_factor == 3

    @pytest.mark.parametrize("spec, error, message", [
        (PhysicsSpec(), ConfigError, "needs the blur kernel"),
        (PhysicsSpec(task="sr"), ConfigError, "needs --sr-factor"),
        (PhysicsSpec(kernel="Box_R2", noise="poisson"), UnknownNameError, "gaussian"),
        (PhysicsSpec(kernel="Box_R2", noise_level=float("inf")), ConfigError, "finite"),
        (PhysicsSpec(kernel="Box_R2", padding="zeros"), UnknownNameError, "circular, reflect, replicate"),
        (PhysicsSpec(task="sr", sr_factor=2, padding="reflect"), ConfigError, "no 'reflect' boundary model"),
        (PhysicsSpec(kernel="Box_R2", operator="my.Operator"), ConfigError, "from Python"),
    ])
    def test_errors(self, spec, error, message):
        with pytest.raises(error, match=message):
            resolve_spec(spec)

    def test_unknown_keys_are_refused(self):
        with pytest.raises(ConfigError, match="unknown physics key"):
            PhysicsSpec.from_dict({"task": "sr", "factor": 2})

    def test_the_recorded_operator_fills_what_is_open(self, psf_file):
        recorded = resolve_spec(PhysicsSpec(task="sr", sr_factor=2, kernel=str(psf_file), noise_level=3))
        assert resolve_spec(PhysicsSpec(), recorded=recorded).same_operator(recorded)
        louder = resolve_spec(PhysicsSpec(noise_level=9), recorded=recorded)
        assert louder.noise_level == 9 and louder.task == "sr"
        other = resolve_spec(PhysicsSpec(kernel="Box_R2"), recorded=recorded)  # the options name an operator
        assert other.task == "deblurring" and other.kernel == "Box_R2" and other.noise_level == 3

    def test_the_recorded_boundary_model_comes_with_the_recorded_operator(self):
        recorded = resolve_spec(PhysicsSpec(kernel="Box_R2", padding="reflect", noise_level=3))
        assert resolve_spec(PhysicsSpec(noise_level=9), recorded=recorded).padding == "reflect"
        assert resolve_spec(PhysicsSpec(kernel="Box_R3"), recorded=recorded).padding == "circular"
        assert resolve_spec(PhysicsSpec(kernel="Box_R3", padding="replicate"), recorded=recorded).padding == "replicate"
        assert "reflect borders" in recorded.describe() and "borders" not in resolve_spec(
            PhysicsSpec(kernel="Box_R2")).describe()

    def test_kernel_files_compare_by_content(self, psf_file, tmp_path):
        copy = tmp_path / "copy.npy"
        shutil.copy(psf_file, copy)
        assert resolve_spec(PhysicsSpec(kernel=str(psf_file))).same_operator(resolve_spec(PhysicsSpec(kernel=str(copy))))


class TestRoundTrips:
    def test_config_yaml_and_weights_record_the_spec(self, tmp_path, psf_file):
        config = from_flat({**TINY, "physics.task": "sr", "physics.sr_factor": 2, "physics.kernel": str(psf_file),
                            "physics.noise_level": 3, "out_dir": str(tmp_path / "run")})
        result = train(config)
        saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())["physics"]
        assert saved["kernel"] == "motion.npy" and saved["sr_factor"] == 2 and saved["noise_level"] == 3
        assert np.array_equal(np.load(result.out_dir / "motion.npy"), np.load(psf_file))
        spec = read_physics(result.weights)
        assert isinstance(spec.kernel, torch.Tensor) and spec.task == "sr" and spec.noise_level == 3
        assert torch.allclose(spec.kernel, torch.from_numpy(np.load(psf_file)))
        assert isinstance(spec.build(), BlurDownsampling)

    def test_a_moved_run_tests_from_another_directory(self, tmp_path, psf_file, monkeypatch, capsys):
        run = tmp_path / "run"
        assert main(["train", "--dataset", "sample", "--kernel", str(psf_file), *TINY_FLAGS, "--out-dir", str(run)]) == 0
        psf_file.unlink()  # the user's file is gone: the run has its own copy
        moved = tmp_path / "elsewhere" / "moved_run"
        moved.parent.mkdir()
        shutil.move(run, moved)
        monkeypatch.chdir(moved.parent)
        assert main(["test", "--weights", "moved_run", "--max-images", "1", "--no-lpips", "--quiet"]) == 0
        assert "motion deblurring" in capsys.readouterr().out

    def test_resume_accepts_another_spelling_of_the_kernel(self, tmp_path):
        run = tmp_path / "run"
        common = ["train", "--dataset", "sample", *TINY_FLAGS[:-2], "--out-dir", str(run)]
        assert main([*common, "--kernel", "Gaussian_R1", "--steps", "2"]) == 0
        (run / "weights.pt").unlink()  # as if the run had been stopped after its checkpoint
        assert main([*common, "--kernel", "gaussian_r1", "--steps", "4", "--resume"]) == 0
        assert yaml.safe_load((run / "config.yaml").read_text())["physics"]["kernel"] == "Gaussian_R1"

    def test_resume_refuses_another_operator(self, tmp_path, capsys):
        run = tmp_path / "run"
        common = ["train", "--dataset", "sample", *TINY_FLAGS[:-2], "--out-dir", str(run)]
        assert main([*common, "--kernel", "Gaussian_R1", "--steps", "2"]) == 0
        assert main([*common, "--kernel", "Box_R2", "--steps", "4", "--resume"]) == 2
        assert "physics: Gaussian_R1 deblurring" in capsys.readouterr().err


class TestNoSilentOperator:
    def test_measurements_without_a_kernel_are_refused(self, tmp_path, capsys):
        folder = tmp_path / "blurry"
        folder.mkdir()
        from PIL import Image

        Image.fromarray((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8)).save(folder / "a.png")
        assert main(["train", "--measurements", str(folder), *TINY_FLAGS, "--out-dir", str(tmp_path / "r")]) == 2
        assert "needs the blur kernel" in capsys.readouterr().err

    def test_measurement_folders_say_their_operator(self, tmp_path, psf_file, capsys):
        clean = tmp_path / "clean"
        clean.mkdir()
        from skimage import data
        from PIL import Image

        for name in ("camera", "coffee"):
            image = getattr(data, name)()
            Image.fromarray(image[:96, :96]).save(clean / f"{name}.png")
        folder = tmp_path / "blurry"
        assert main(["degrade", str(clean), str(folder), "--kernel", str(psf_file), "--noise-level", "3",
                     "--quiet"]) == 0
        record = yaml.safe_load((folder / "degradation.yaml").read_text())
        assert record["kernel"] == "motion.npy" and (folder / "motion.npy").is_file() and record["noise_level"] == 3
        capsys.readouterr()
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(folder), *TINY_FLAGS, "--out-dir", str(run)]) == 0
        out = capsys.readouterr().out
        assert "degradation.yaml" in out and "motion deblurring, gaussian noise 3/255" in out
        # baselines read the folder's record too
        assert main(["restore", str(folder), str(tmp_path / "wiener"), "--model-kind", "wiener", "--quiet"]) == 0
        assert "from " in capsys.readouterr().out and (tmp_path / "wiener" / "camera.png").is_file()
        # and a trained network needs no physics options: its weights carry the operator
        assert main(["restore", str(folder), str(tmp_path / "net"), "--weights", str(run), "--quiet"]) == 0

    def test_a_boundary_model_goes_from_degrade_to_train_to_restore(self, tmp_path, capsys):
        from PIL import Image
        from skimage import data

        clean = tmp_path / "clean"
        clean.mkdir()
        Image.fromarray(data.camera()[100:196, 200:296]).save(clean / "camera.png")
        folder = tmp_path / "blurry"
        assert main(["degrade", str(clean), str(folder), "--kernel", "Box_R2", "--boundary", "reflect",
                     "--noise-level", "3", "--quiet"]) == 0
        assert yaml.safe_load((folder / "degradation.yaml").read_text())["padding"] == "reflect"
        run = tmp_path / "run"
        assert main(["train", "--measurements", str(folder), *TINY_FLAGS, "--out-dir", str(run)]) == 0
        assert "Box_R2 deblurring, reflect borders" in capsys.readouterr().out
        assert read_physics(run / "weights.pt").padding == "reflect"
        assert main(["restore", str(folder), str(tmp_path / "rl"), "--model-kind", "rl", "--quiet"]) == 0
        assert (tmp_path / "rl" / "camera.png").is_file()
        # an operator without the model refuses it in one line
        assert main(["restore", str(folder), str(tmp_path / "sr"), "--model-kind", "bicubic", "--task", "sr",
                     "--sr-factor", "2", "--boundary", "reflect", "--quiet"]) == 2  # bicubic defines its own
        assert "has no 'reflect' boundary model" in capsys.readouterr().err

    def test_a_baseline_without_an_operator_is_refused(self, tmp_path, capsys):
        image = tmp_path / "in.png"
        from PIL import Image

        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(image)
        assert main(["restore", str(image), str(tmp_path / "out"), "--model-kind", "wiener", "--quiet"]) == 2
        assert "needs the blur kernel" in capsys.readouterr().err

    def test_sei_test_sr_without_a_factor_raises_like_the_other_commands(self, capsys):
        assert main(["test", "--model-kind", "bicubic", "--task", "sr", "--dataset", "sample", "--quiet"]) == 2
        assert "needs --sr-factor" in capsys.readouterr().err

    def test_bare_published_format_weights_restore_with_flags(self, tmp_path):
        # the authors' format: a bare state dict, no architecture record
        bare = tmp_path / "bare.pt"
        torch.save(build_backbone("unet-tiny").state_dict(), bare)
        image = tmp_path / "in.png"
        from PIL import Image

        Image.fromarray((np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)).save(image)
        assert main(["restore", str(image), str(tmp_path / "out.png"), "--weights", str(bare), "--model",
                     "unet-tiny", "--task", "deblurring", "--kernel", "Box_R2", "--quiet"]) == 0
        assert (tmp_path / "out.png").is_file()


class TestAnyDeepinvOperator:
    def test_a_stock_deepinv_blur_trains_exactly_like_the_same_operator_built_by_sei(self, tmp_path):
        # same kernel, same noise level: the deepinv operator's own noise model, drawn from sei's seeded
        # generators, and its margin read from its filter, give the very same run
        import deepinv

        from sei.models.weights import read_weights
        from sei.physics import make_physics

        kernel = motion_psf(7, 20)
        stock = deepinv.physics.Blur(filter=kernel[None, None], padding="circular",
                                     noise_model=deepinv.physics.GaussianNoise(sigma=3 / 255))
        ours = make_physics("deblurring", kernel=kernel, noise_level=3)
        runs = []
        for name, physics in (("stock", stock), ("ours", ours)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # float32, although training calls both operators in float32 under bf16 too (test_precision.py): a bf16
                # network rounds their ~1e-7 differences into different inputs, and Adam's first steps, normalised
                # per weight, make those lr-sized weight differences (measured: 3e-4 after 3 steps)
                runs.append(train(from_flat({**TINY, "train.steps": 3, "train.precision": "32-true",
                                             "out_dir": str(tmp_path / name)}), physics=physics))
        (stock_state, _), (our_state, _) = read_weights(runs[0].weights), read_weights(runs[1].weights)
        for key in our_state:
            assert torch.allclose(stock_state[key], our_state[key], atol=1e-5), key

    def test_a_stock_deepinv_blur_with_a_motion_kernel_trains_and_improves(self, tmp_path):
        import deepinv

        from sei.data.pairs import MeasurementSet
        from sei.data.sources import load_image_set
        from sei.inference.evaluation import evaluate
        from sei.models import load_backbone
        from sei.inference.reconstructors import NetworkReconstructor

        physics = deepinv.physics.Blur(filter=motion_psf(9, 20)[None, None], padding="circular",
                                       noise_model=deepinv.physics.GaussianNoise(sigma=2 / 255))
        config = from_flat({**TINY, "model.backbone": "unet-small", "train.steps": 60, "data.batch_size": 4,
                            "data.crop_size": 40, "data.samples_per_epoch": 240, "train.lr": 1e-3,
                            "out_dir": str(tmp_path / "run")})
        with pytest.warns(UserWarning, match="cannot be written to config.yaml"):
            result = train(config, physics=physics)
        saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())["physics"]
        assert saved["operator"].endswith("Blur") and saved["noise_level"] == pytest.approx(2)
        images = load_image_set("sample", "val")
        images.names, images.images = images.names[:2], [im[:, :128, :128] for im in images.images[:2]]
        measurements = MeasurementSet(images, physics, 0)
        blurry = evaluate(NetworkReconstructor(torch.nn.Identity()), measurements, "cpu", progress=False)
        restored = evaluate(NetworkReconstructor(load_backbone(result.weights)), measurements, "cpu", progress=False)
        assert restored.summary["psnr"] > blurry.summary["psnr"] + 0.05  # measured: +0.10 dB after 60 steps
        # the run cannot be rebuilt from its config.yaml alone, and says so
        again = from_flat({"out_dir": str(tmp_path / "again")}, config_from(result.out_dir))
        with pytest.raises(ConfigError, match="from Python"):
            train(again)

    def test_non_gaussian_noise_is_a_clear_error(self, tmp_path):
        import deepinv

        physics = deepinv.physics.Blur(filter=motion_psf(5, 0)[None, None], padding="circular",
                                       noise_model=deepinv.physics.PoissonNoise(gain=0.1))
        with pytest.raises(ConfigError, match="PoissonNoise"):
            train(from_flat({**TINY, "out_dir": str(tmp_path / "run")}), physics=physics)

    def test_our_own_operators_are_recorded_as_their_spec(self, tmp_path):
        from sei.physics import make_physics

        result = train(from_flat({**TINY, "out_dir": str(tmp_path / "run")}),
                       physics=make_physics("sr", sr_factor=2, kernel="Box_R2", noise_level=4))
        saved = yaml.safe_load((result.out_dir / "config.yaml").read_text())["physics"]
        assert (saved["task"], saved["kernel"], saved["sr_factor"], saved["operator"]) == ("sr", "Box_R2", 2, None)


def config_from(run: Path):
    from sei.training.run import load_run_config

    return load_run_config(run)
