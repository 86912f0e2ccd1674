"""The GPU attention and compilation paths of SwinIR compute what deepinv's code computes (checked on a CPU)."""

from __future__ import annotations

import pytest
import torch

from sei.models.compilation import compile_network, swin_blocks
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
