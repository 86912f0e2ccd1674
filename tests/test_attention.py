"""The GPU attention and compilation paths of SwinIR compute what deepinv's code computes (checked on a CPU)."""

from __future__ import annotations

import pytest
import torch

from sei.core.errors import ConfigError
from sei.config.recipe import resolve_compile
from sei.models.compilation import (
    COMPILE_MODES, compile_mode, compile_network, running_eagerly, swin_blocks, uses_cuda_graphs,
)
from sei.models.swinir import SwinIR, fused_window_attention


def reference_attention(q, k, v, bias, mask, scale):
    """deepinv's formula: softmax(q k^T scale + bias (+ mask per window position)) v."""
    scores = (q * scale) @ k.transpose(-2, -1) + bias.unsqueeze(0)
    if mask is not None:
        windows, heads, tokens, _ = q.shape
        scores = scores.view(-1, mask.shape[0], heads, tokens, tokens) + mask.unsqueeze(1).unsqueeze(0)
        scores = scores.view(windows, heads, tokens, tokens)
    return scores.softmax(-1) @ v


class TestFusedWindowAttention:
    @pytest.mark.parametrize("size", [30, 32])  # the paper's 30 channels per head are padded to 32
    @pytest.mark.parametrize("masked", [False, True])
    def test_matches_the_reference_formula(self, size, masked):
        generator = torch.Generator().manual_seed(0)
        images, per_image, heads, tokens = 2, 4, 3, 16
        q, k, v = (torch.randn(images * per_image, heads, tokens, size, generator=generator, requires_grad=True)
                   for _ in range(3))
        bias = torch.randn(heads, tokens, tokens, generator=generator, requires_grad=True)
        mask = (torch.rand(per_image, tokens, tokens, generator=generator) > 0.7) * -100.0 if masked else None
        fused = fused_window_attention(q, k, v, bias, mask, size**-0.5)
        reference = reference_attention(q, k, v, bias, mask, size**-0.5)
        assert fused.shape == reference.shape
        assert torch.allclose(fused, reference, atol=1e-5)
        grads = torch.autograd.grad(fused.square().sum(), (q, k, v, bias))
        expected = torch.autograd.grad(reference.square().sum(), (q, k, v, bias))
        for got, want in zip(grads, expected):
            assert torch.allclose(got, want, atol=1e-4)


class TestFusedKernelPreconditions:
    """PyTorch's fused CUDA attention kernels take 4-D inputs whose last dimension is contiguous, the additive mask
    included, a head size that is a multiple of 8 and a mask that broadcasts over the batch only; given anything
    else, ``scaled_dot_product_attention`` silently computes unfused. Checked on the arguments it receives."""

    @pytest.mark.parametrize("shifted", [False, True])
    def test_scaled_dot_product_attention_gets_what_the_fused_kernels_need(self, monkeypatch, shifted):
        calls = []
        attention_function = torch.nn.functional.scaled_dot_product_attention

        def recording(q, k, v, attn_mask=None, **options):
            calls.append((q, k, v, attn_mask))
            return attention_function(q, k, v, attn_mask=attn_mask, **options)

        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording)
        model = SwinIR(upscale=1, embed_dim=60, depths=(2,), num_heads=(2,))  # 30 channels per head, as the paper's
        block = model.layers[0].residual_group.blocks[int(shifted)]
        assert (block.shift_size > 0) == shifted
        mask = block.calculate_mask((16, 32)) if shifted else None  # 2 x 4 windows of 8 x 8 tokens
        q, k, v = (torch.randn(8, 2, 64, 30, generator=torch.Generator().manual_seed(i)) for i in range(3))
        fused_window_attention(q, k, v, block.attn.relative_bias(), mask, block.attn.scale)
        (q, k, v, attn_mask), = calls
        for tensor in (q, k, v, attn_mask):
            assert tensor.dim() == 4 and tensor.stride(-1) == 1
        assert q.shape[-1] % 8 == 0
        assert attn_mask.shape[0] == 1 and attn_mask.shape[1] == q.shape[1]


class TestCompileNetwork:
    def test_swinir_blocks_compiled_in_place_give_the_eager_output(self):
        torch.manual_seed(0)
        eager = SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,))
        model = SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,))
        model.load_state_dict(eager.state_dict())
        compiled = compile_network(model)
        assert compiled is model and len(swin_blocks(model)) == 2
        assert list(compiled.state_dict()) == list(eager.state_dict())
        x = torch.rand(1, 3, 16, 16)
        assert torch.allclose(compiled(x), eager(x), atol=1e-5)

    def test_other_networks_are_compiled_whole(self):
        network = torch.nn.Conv2d(3, 3, 3)
        assert swin_blocks(network) == []
        assert compile_network(network) is not network

    def test_cuda_graph_mode_gives_the_eager_output_and_gradients_on_a_cpu(self):
        # reduce-overhead replays CUDA graphs on GPUs only (tests/test_cuda.py); on a CPU it must compile as usual
        torch.manual_seed(0)
        eager = SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,))
        model = SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,))
        model.load_state_dict(eager.state_dict())
        compiled = compile_network(model, "reduce-overhead")
        x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
        compiled(x).square().mean().backward()
        eager(x).square().mean().backward()
        for (name, got), want in zip(model.named_parameters(), eager.parameters()):
            assert torch.allclose(got.grad, want.grad, atol=1e-5), name

    def test_checkpointing_networks_compile_without_cuda_graphs(self, monkeypatch):
        modes = []
        monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **options: modes.append(options["mode"]))
        model = SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,), checkpointing=True)
        with pytest.warns(UserWarning, match="checkpointing"):
            compile_network(model, "max-autotune")
        assert modes == ["max-autotune-no-cudagraphs"] * 2
        modes.clear()
        compile_network(SwinIR(upscale=1, embed_dim=12, depths=(2,), num_heads=(2,)), "reduce-overhead")
        assert modes == ["reduce-overhead"] * 2

    def test_unknown_mode_is_refused(self):
        with pytest.raises(ConfigError, match="reduce-overhead"):
            compile_network(torch.nn.Conv2d(3, 3, 3), "fastest")


class TestCompileMode:
    @pytest.mark.parametrize("value,expected", [(False, None), (None, None), ("off", None), ("false", None),
                                                (True, "default"), ("true", "default"), ("default", "default"),
                                                ("Reduce-Overhead", "reduce-overhead")])
    def test_settings_name_a_mode_or_none(self, value, expected):
        assert compile_mode(value) == expected

    @pytest.mark.parametrize("value", ["fast", 3, "max_autotune"])
    def test_other_values_are_refused_with_the_modes_listed(self, value):
        with pytest.raises(ConfigError, match="max-autotune-no-cudagraphs"):
            compile_mode(value)

    def test_auto_compiles_with_cuda_graphs_on_gpus_and_not_on_cpus(self):
        assert resolve_compile("auto", torch.device("cuda")) == "reduce-overhead"
        assert resolve_compile("Auto", torch.device("cpu")) is None
        assert resolve_compile("default", torch.device("cpu")) == "default"
        assert resolve_compile(False, torch.device("cuda")) is None
        assert resolve_compile("auto", torch.device("cuda"), processes=2) is None  # data-parallel runs stay eager
        assert resolve_compile("reduce-overhead", torch.device("cuda"), processes=2) == "reduce-overhead"

    def test_running_eagerly_runs_a_compiled_function_without_compiling_it(self):
        from torch._dynamo.utils import counters

        torch._dynamo.reset()
        counters.clear()
        compiled = torch.compile(lambda x: torch.sin(x) * 2)
        x = torch.randn(5)
        with running_eagerly("default"):
            torch.testing.assert_close(compiled(x), torch.sin(x) * 2)
        assert counters["stats"]["unique_graphs"] == 0
        compiled(x)
        assert counters["stats"]["unique_graphs"] == 1

    def test_only_graph_replaying_modes_mark_steps(self):
        assert [mode for mode in COMPILE_MODES if uses_cuda_graphs(mode)] == ["reduce-overhead", "max-autotune"]
        assert not uses_cuda_graphs(None)
