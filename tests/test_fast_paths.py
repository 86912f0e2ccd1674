"""The optimised training paths compute what the straightforward ones compute."""

from __future__ import annotations

import pytest
import torch
from deepinv.models.swinir import SwinTransformerBlock
from helpers import relative_difference

from sei.losses.registry import build_method
from sei.models.swinir import CachedMaskBlock, FusedWindowAttention, SwinIR
from sei.physics import make_physics

SMALL = dict(embed_dim=24, depths=(2, 2), num_heads=(3, 3))


def pair(upscale: int):
    """The same small SwinIR twice: deepinv's attention without checkpointing, and the fast path."""
    torch.manual_seed(0)
    reference = SwinIR(upscale=upscale, fused_attention=False, **SMALL)
    fast = SwinIR(upscale=upscale, fused_attention=True, checkpointing=True, **SMALL)
    fast.load_state_dict(reference.state_dict())
    return reference, fast


class TestSwinIR:
    @pytest.mark.parametrize("size", [(48, 48), (29, 45)])
    def test_fused_attention_and_checkpointing_match(self, size):
        reference, fast = pair(upscale=2)
        x = torch.rand(2, 3, *size)
        out_reference, out_fast = reference(x), fast(x)
        assert relative_difference(out_fast, out_reference) < 1e-5
        out_reference.square().mean().backward()
        out_fast.square().mean().backward()
        for p_ref, p_fast in zip(reference.parameters(), fast.parameters()):
            assert relative_difference(p_fast.grad, p_ref.grad) < 1e-4

    def test_classes_are_swapped_without_changing_keys(self):
        reference, fast = pair(upscale=1)
        assert list(reference.state_dict()) == list(fast.state_dict())
        assert any(isinstance(m, FusedWindowAttention) for m in fast.modules())
        assert not any(isinstance(m, FusedWindowAttention) for m in reference.modules())

    def test_masks_for_new_sizes_are_cached_once(self):
        model = SwinIR(upscale=1, **SMALL).eval()
        with torch.no_grad():
            model(torch.rand(1, 3, 40, 56))
            model(torch.rand(1, 3, 40, 56))
        blocks = [m for m in model.modules() if isinstance(m, CachedMaskBlock)]
        cache = blocks[0].mask_cache
        assert all(b.mask_cache is cache for b in blocks)
        assert len(cache) == 2  # one size, two shifts (0 and half a window), shared by all 4 blocks
        shifted = next(b for b in blocks if b.shift_size > 0)
        assert torch.equal(shifted.calculate_mask((40, 56)), SwinTransformerBlock.calculate_mask(shifted, (40, 56)))


@pytest.mark.parametrize("task", ["deblurring", "sr"])
@pytest.mark.parametrize("name", ["sei", "sure", "ei-rotate"])
def test_optimised_loss_and_gradients_match_the_baseline(task, name):
    physics = make_physics(task, kernel="Box_R2" if task == "deblurring" else None,
                           sr_factor=2 if task == "sr" else None, noise_level=5)
    reference, fast = pair(upscale=physics.upscale)
    y = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    baseline = build_method(name, batched_probe=False)(reference, physics, y, generator=torch.Generator().manual_seed(7))
    optimised = build_method(name, batched_probe=True)(fast, physics, y, generator=torch.Generator().manual_seed(7))
    assert optimised.loss.item() == pytest.approx(baseline.loss.item(), rel=1e-4, abs=1e-7)
    baseline.loss.backward()
    optimised.loss.backward()
    for p_ref, p_fast in zip(reference.parameters(), fast.parameters()):
        assert relative_difference(p_fast.grad, p_ref.grad) < 1e-3


def test_release_freed_memory_in_a_fresh_process():
    # process-wide allocator settings: checked in a child process, which then still computes correctly
    import subprocess
    import sys

    code = ("import torch; from sei.core.memory import release_freed_memory; ok = release_freed_memory(); "
            "x = torch.ones(1 << 22); print(ok, float(x.sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == ("True" if sys.platform.startswith("linux") else "False")
    assert float(out[1]) == float(1 << 22)


def test_lean_memory_training_option(tmp_path):
    import yaml

    from sei.cli import main

    run = tmp_path / "run"
    assert main(["train", "--dataset", "sample", "--model", "swinir-small", "--lean-memory", "--kernel", "Box_R2",
                 "--crop-size", "16", "--batch-size", "1", "--samples-per-epoch", "2", "--steps", "1", "--quiet",
                 "--out-dir", str(run)]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"]["checkpointing"] and config["train"]["release_memory"]
    from sei.config.schema import from_flat
    from sei.core.errors import ConfigError
    from sei.training import train

    with pytest.raises(ConfigError, match="SwinIR"):
        train(from_flat({"data.dataset": "sample", "model.backbone": "unet-tiny", "model.checkpointing": True,
                         "train.steps": 1, "out_dir": str(tmp_path / "other"), "train.progress": False}))


@pytest.mark.parametrize("policy", [True, "alternate"])
def test_checkpointing_policies_give_the_loss_and_gradients_of_none(policy):
    physics = make_physics("deblurring", kernel="Box_R2", noise_level=5)
    torch.manual_seed(0)
    reference = SwinIR(upscale=1, checkpointing=False, **SMALL)
    recomputing = SwinIR(upscale=1, checkpointing=policy, **SMALL)
    recomputing.load_state_dict(reference.state_dict())
    y = torch.rand(2, 3, 24, 24, generator=torch.Generator().manual_seed(3))
    method = build_method("sei")
    expected = method(reference, physics, y, generator=torch.Generator().manual_seed(7)).loss
    loss = method(recomputing, physics, y, generator=torch.Generator().manual_seed(7)).loss
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    expected.backward()
    loss.backward()
    for p_ref, p in zip(reference.parameters(), recomputing.parameters()):
        assert relative_difference(p.grad, p_ref.grad) < 1e-5


def test_unknown_checkpointing_policy():
    from sei.core.errors import ConfigError

    with pytest.raises(ConfigError, match="checkpointing"):
        SwinIR(upscale=1, checkpointing="sometimes", **SMALL)
