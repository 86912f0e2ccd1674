"""``--noise-level learn``: the learned Gaussian noise level converges towards the truth from a wrong start, only
training batches move it, it is recorded in the weights and a resumed run continues it exactly."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from sei.losses.sure import residual_noise_variance, sure_gaussian
from sei.losses.registry import build_method
from sei.models import build_backbone
from sei.physics import PhysicsSpec, make_physics

TRUTH = 10.0  # grey levels


def noisy_measurement(natural_image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    clean = make_physics("deblurring", kernel="Gaussian_R1", noise_level=0).A(natural_image[None])
    return clean + TRUTH / 255 * torch.randn(clean.shape, generator=generator)


def learn_level(natural_image: torch.Tensor, start: float, steps: int):
    """SURE training of a tiny network on random 32x32 crops of one measurement, the level learned from ``start``:
    ``(method, physics, last output)``."""
    physics = PhysicsSpec(kernel="Gaussian_R1", noise_level=start, noise_source="learned").build()
    generator = torch.Generator().manual_seed(0)
    y = noisy_measurement(natural_image, generator)
    torch.manual_seed(0)
    model = build_backbone("unet-tiny", upscale=1)
    method = build_method("sure").train()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        top, left = (int(torch.randint(0, n - 31, (), generator=generator)) for n in y.shape[-2:])
        output = method(model, physics, y[..., top:top + 32, left:left + 32], generator=generator)
        optimiser.zero_grad()
        output.loss.backward()
        optimiser.step()
    return method, physics, output


@pytest.mark.parametrize("factor", [0.5, 2.0])
def test_learned_level_converges_towards_the_truth(natural_image, factor):
    start = factor * TRUTH
    method, physics, output = learn_level(natural_image, start, steps=100)
    learned = method.learned_noise_level
    # from half or twice the truth to within 20 % of it: a level that did not move stays 50 % or 100 % off
    assert abs(learned / TRUTH - 1) < 0.2, learned
    assert float(output.parts["sigma"]) == pytest.approx(method.learned_noise_level, rel=0.05)
    assert physics.noise_model.noise_level == start  # the loss keeps the level; the operator is left as built


def test_the_equivariance_noise_is_drawn_at_the_learned_level(natural_image, monkeypatch):
    import sei.losses.sei as sei_loss

    drawn = []
    equivariance_loss = sei_loss.equivariance_loss

    def spy(*args, **kwargs):
        drawn.append(kwargs["sigma"])
        return equivariance_loss(*args, **kwargs)

    monkeypatch.setattr(sei_loss, "equivariance_loss", spy)
    physics = PhysicsSpec(kernel="Gaussian_R1", noise_level=2 * TRUTH, noise_source="learned").build()
    generator = torch.Generator().manual_seed(0)
    y = noisy_measurement(natural_image, generator)[..., :32, :32]
    torch.manual_seed(0)
    model, method = build_backbone("unet-tiny", upscale=1), build_method("sei").train()
    for _ in range(3):
        output = method(model, physics, y, generator=generator)
        assert drawn[-1] * 255 == pytest.approx(float(output.parts["sigma"]))  # e' at the level SURE used
    assert drawn[0] * 255 == pytest.approx(2 * TRUTH) and drawn[-1] != drawn[0]  # from the start, then learned
    unlearned = make_physics("deblurring", kernel="Gaussian_R1", noise_level=TRUTH)
    build_method("sei")(model, unlearned, y, generator=generator)
    assert drawn[-1] is None  # a level that is not learned is the noise model's own


def test_residual_estimate_bounds_the_variance_from_above(natural_image):
    """On the untrained (near-identity) network the residual estimate is already of the order of sigma^2, above it."""
    generator = torch.Generator().manual_seed(0)
    y = noisy_measurement(natural_image, generator)
    physics = make_physics("deblurring", kernel="Gaussian_R1", noise_level=TRUTH)
    torch.manual_seed(0)
    terms = sure_gaussian(build_backbone("unet-tiny", upscale=1), physics, y, TRUTH / 255, generator, margin=(3, 3))
    estimate = residual_noise_variance(terms)
    assert (TRUTH / 255) ** 2 < estimate < 4 * (TRUTH / 255) ** 2
    terms.noise_gain = torch.tensor(0.0)  # a residual that keeps no noise: nothing to learn from
    assert residual_noise_variance(terms) is None


def test_only_training_batches_move_the_level_and_it_is_recorded(natural_image):
    from sei.training.measured_noise import learned_physics

    method, physics, _ = learn_level(natural_image, 5.0, steps=3)
    learned = method.learned_noise_level
    assert learned != 5.0
    method.eval()(build_backbone("unet-tiny", upscale=1), physics,
                  noisy_measurement(natural_image, torch.Generator().manual_seed(1))[..., :48, :48])
    assert method.learned_noise_level == learned
    recorded = learned_physics(physics.spec, method)
    assert recorded.noise_level == pytest.approx(learned, rel=1e-3) and recorded.noise_source == "learned"
    # the running average's whole state is the buffer a checkpoint saves: a fresh method continues from it
    fresh = build_method("sure")
    fresh.load_state_dict(method.state_dict())
    assert fresh.learned_noise_level == learned


def learning_run(tmp_path) -> dict:
    """Settings of a tiny SURE run that learns the level from 16-bit measurements (noise 8) of two 64x64 crops."""
    from PIL import Image
    from skimage import data

    from sei.cli import main

    clean = tmp_path / "clean"
    clean.mkdir()
    for name in ("camera", "moon"):
        Image.fromarray(getattr(data, name)()[:64, :64]).save(clean / f"{name}.png")
    folder = tmp_path / "blurry"
    assert main(["degrade", str(clean), str(folder), "--kernel", "Gaussian_R1", "--noise-level", "8", "--bits", "16",
                 "--quiet"]) == 0
    return {"data.dataset": str(folder), "data.kind": "measurements", "physics.kernel": "Gaussian_R1",
            "physics.noise_level": "learn", "model.backbone": "unet-tiny", "data.batch_size": 2,
            "data.crop_size": 24, "data.samples_per_epoch": 4, "train.progress": False, "loss.method": "sure",
            "train.steps": 5}


def test_resumed_run_continues_the_learned_level_exactly(tmp_path, interrupt):
    from sei.config.schema import from_flat
    from sei.models.weights import read_physics
    from sei.training import train

    settings = learning_run(tmp_path)
    reference = train(from_flat({**settings, "out_dir": str(tmp_path / "a")}))
    with pytest.raises(RuntimeError, match="simulated kill"):
        train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), callbacks=[interrupt(3)])
    resumed = train(from_flat({**settings, "out_dir": str(tmp_path / "b")}), resume=True)
    levels = [torch.load(tmp_path / run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
              ["method.noise_variance"] for run in ("a", "b")]
    assert levels[0] > 0 and torch.equal(levels[0], levels[1])
    assert read_physics(resumed.weights).noise_source == "learned"
    weights = [torch.load(r.weights, weights_only=True)["params"] for r in (reference, resumed)]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


class RecordLevel(L.Callback):
    """Writes each rank's learned variance after every step to ``<folder>/rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.levels: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_index) -> None:
        self.levels.append(pl_module.method.noise_variance.detach().clone())

    def on_train_end(self, trainer, pl_module) -> None:
        torch.save(torch.stack(self.levels), f"{self.folder}/rank{trainer.global_rank}.pt")


def test_data_parallel_ranks_learn_one_level(tmp_path):
    from sei.config.schema import from_flat
    from sei.training import train

    settings = {**learning_run(tmp_path), "train.steps": 3, "train.devices": 2, "train.device": "cpu",
                "out_dir": str(tmp_path / "run")}
    train(from_flat(settings), callbacks=[RecordLevel(str(tmp_path))], strategy="ddp_spawn")
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0.numel() == 3
    assert not torch.equal(rank0[0], rank0[-1])  # the level moved ...
    assert torch.equal(rank0, rank1)  # ... identically on both ranks, though each trains on its own crops
