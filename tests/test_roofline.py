"""The roofline benchmark's traffic counter (benchmarks/roofline.py) counts what a kernel must compute and move."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:  # the benchmarks import their shared modules (recording) as scripts do
    sys.path.insert(0, str(BENCHMARKS))
SPEC = importlib.util.spec_from_file_location("roofline", BENCHMARKS / "roofline.py")
roofline = sys.modules.setdefault("roofline", importlib.util.module_from_spec(SPEC))  # dataclasses look it up
SPEC.loader.exec_module(roofline)

PEAK, BANDWIDTH = 1e15, 1e12  # FLOP/s, bytes/s


def record(function, window_tokens=None) -> dict:
    traffic = roofline.Traffic(PEAK, BANDWIDTH, window_tokens=window_tokens)
    with traffic:
        function()
    return traffic.kinds


class TestTraffic:
    def test_a_linear_layer_moves_its_input_weight_bias_and_output_once(self):
        tokens, inputs, outputs = 64, 12, 20
        layer = torch.nn.Linear(inputs, outputs)
        x = torch.randn(tokens, inputs)
        with torch.no_grad():
            kinds = record(lambda: layer(x))
        assert set(kinds) == {"linear"}
        linear = kinds["linear"]
        assert linear.calls == 1 and linear.flops == 2 * tokens * inputs * outputs
        assert linear.bytes == 4 * (tokens * inputs + inputs * outputs + outputs + tokens * outputs)
        assert linear.seconds == pytest.approx(max(linear.flops / PEAK, linear.bytes / BANDWIDTH))

    def test_views_move_nothing_and_broadcast_inputs_are_read_once(self):
        x = torch.randn(8, 1, 16)
        kinds = record(lambda: (x.transpose(0, 2).reshape(16, 8), x + x.expand(8, 4, 16)))
        assert set(kinds) == {"element-wise"} and kinds["element-wise"].calls == 1
        assert kinds["element-wise"].bytes == 4 * (8 * 16 + 8 * 16 + 8 * 4 * 16)

    def test_attention_matrices_stay_on_chip_when_the_window_is_given(self):
        q = torch.randn(2, 3, 16, 8)

        def attention():
            return (q @ q.transpose(-2, -1)).softmax(-1) @ q

        off_chip, on_chip = record(attention), record(attention, window_tokens=16)
        assert on_chip["attention"].flops == off_chip["attention"].flops == 2 * (2 * 2 * 3 * 16 * 16 * 8)
        q_bytes = q.numel() * 4
        assert on_chip["attention"].bytes == 4 * q_bytes  # q, k in; v in, out
        assert off_chip["attention"].bytes == 4 * q_bytes + 2 * (2 * 3 * 16 * 16 * 4)
        assert on_chip["softmax"].bytes == 0 < off_chip["softmax"].bytes


class TestBounds:
    def test_matmul_only_bound_ignores_the_other_kinds_and_never_exceeds_the_peak(self):
        kinds = {"linear": roofline.KindTotals(1, 2e12, 1e10, max(2e12 / PEAK, 1e10 / BANDWIDTH)),
                 "normalisation": roofline.KindTotals(1, 0.0, 1e10, 1e10 / BANDWIDTH)}
        result = roofline.bounds(kinds, PEAK, BANDWIDTH)
        assert result["matmul_only_s"] == pytest.approx(1e-2)  # memory-bound: 10 GB at 1 TB/s
        assert result["per_op_s"] == pytest.approx(2e-2)
        assert result["matmul_only_mfu"] == pytest.approx(2e-3 / 1e-2)
        assert result["per_op_mfu"] < result["matmul_only_mfu"] <= 1
        assert result["matmul_intensity"] == pytest.approx(200)
