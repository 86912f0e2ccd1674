"""Roofline bound of a training step: the best model-FLOP utilisation (MFU) a GPU could reach with given kernels.

    python benchmarks/roofline.py [--backbones swinir] [--tasks deblurring,sr] [--methods sei,supervised]
                                  [--batch 8] [--crop 48] [--gpu h100] [--precision bf16]

Runs one training step of the ``train_step.py`` benchmark (its ``fast`` or ``bf16`` mode) on the CPU and records
every PyTorch operator the step dispatches, forward and backward: its floating-point operations (counted as
``torch.utils.flop_counter`` counts them, so the MFU is on the same footing as ``train_step.py``'s) and the bytes it
must move to and from memory (each distinct input element read once, each output written once; views move
nothing). A kernel cannot finish before its arithmetic at the peak rate nor before its traffic at the peak memory
bandwidth, so a step takes at least the sum of ``max(flops / peak, bytes / bandwidth)`` over its kernels. Two
bounds, for two ways of grouping operators into kernels:

- ``per-op``: every operator its own kernel (eager PyTorch with perfect kernels);
- ``matmul-only``: every normalisation, activation, residual, cast, copy and FFT fused away for free; only the
  matrix products and convolutions move memory (the most that fusing element-wise work into them can give,
  i.e. the limit of what torch.compile's kernels can reach while keeping the products apart).

In both, the attention matrices (``N x N`` per window and head, ``N`` the tokens of a window) never leave the chip,
as in the fused attention kernel that the GPU runs use. Both bounds are optimistic: no kernel reaches the peak
bandwidth or the peak arithmetic rate. A bound under a utilisation target means that no kernel library
reaches that target without fusing matrix products together (e.g. a whole Swin block in one kernel). The
measured MFU of ``train_step.py --device cuda`` (``benchmarks/results/train_step_cuda.json``) is shown beside
the bounds where it exists. Prints a table and writes benchmarks/results/roofline.json.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import flop_registry
from recording import Table, record

# NVIDIA's datasheet memory bandwidth in TB/s; the bf16 peaks are train_step.py's DENSE_BF16_PEAK_TFLOPS.
BANDWIDTH_TBS = {"H100": 3.35, "H200": 4.8}
MATMUL_CATEGORIES = ("linear", "attention", "convolution")


def distinct_bytes(tensor: torch.Tensor) -> int:
    """Bytes of the distinct elements of ``tensor``: a broadcast (stride-0) dimension is stored once."""
    elements = math.prod(size for size, stride in zip(tensor.shape, tensor.stride()) if stride != 0)
    return elements * tensor.element_size()


def is_view(func) -> bool:
    """Whether ``func`` returns a view of an input (moves no data); in-place operators are not views."""
    if func.overloadpacket in (torch.ops.aten._unsafe_view, torch.ops.aten.detach, torch.ops.aten.lift_fresh):
        return True
    returns = func._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def category(name: str, flops: int, outputs: list[torch.Tensor]) -> str:
    """A kind of work, from the operator's name (``aten.mm``, ``aten.native_layer_norm``, ...)."""
    if flops:
        if "convolution" in name:
            return "convolution"
        two_dimensional = all(t.dim() <= 2 for t in outputs)
        return "linear" if name in ("mm", "addmm") and two_dimensional else "attention"
    for key, kind in (("norm", "normalisation"), ("softmax", "softmax"), ("fft", "fft"), ("gelu", "activation"),
                      ("relu", "activation"), ("copy", "copy"), ("clone", "copy"), ("cat", "copy"),
                      ("pad", "copy"), ("roll", "copy"), ("index", "copy"), ("stack", "copy"), ("sum", "reduction"),
                      ("mean", "reduction")):
        if key in name:
            return kind
    return "element-wise"


@dataclass
class KindTotals:
    """Work of one kind of operator in a step."""

    calls: int = 0
    flops: float = 0.0
    bytes: float = 0.0
    seconds: float = 0.0  # sum over its kernels of max(arithmetic time, memory time)


@dataclass
class Traffic(TorchDispatchMode):
    """Records the FLOPs and bytes of every operator dispatched inside it, grouped by :func:`category`.

    :param window_tokens: tokens ``N`` of an attention window: tensors whose last two dimensions are ``N x N``
        (attention matrices) are taken to stay on the chip; None for none.
    :param peak_flops: arithmetic peak in FLOP/s; ``bandwidth``: memory bandwidth in bytes/s.
    """

    peak_flops: float
    bandwidth: float
    window_tokens: int | None = None
    kinds: dict[str, KindTotals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__()

    def moved(self, tensor: torch.Tensor) -> int:
        if self.window_tokens and tensor.dim() >= 2 and tensor.shape[-2:] == (self.window_tokens,) * 2:
            return 0
        return distinct_bytes(tensor)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if is_view(func):
            return out
        outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        counter = flop_registry.get(func.overloadpacket)
        flops = int(counter(*args, **kwargs, out_val=out)) if counter else 0
        moved = sum(self.moved(t) for t in inputs + outputs)
        totals = self.kinds.setdefault(category(func.overloadpacket.__name__, flops, outputs), KindTotals())
        totals.calls += 1
        totals.flops += flops
        totals.bytes += moved
        totals.seconds += max(flops / self.peak_flops, moved / self.bandwidth)
        return out


def bounds(kinds: dict[str, KindTotals], peak_flops: float, bandwidth: float) -> dict[str, float]:
    """Step-time lower bounds (s) and the MFU ceilings they imply, for the two kernel groupings."""
    flops = sum(k.flops for k in kinds.values())
    matmuls = [kinds[name] for name in MATMUL_CATEGORIES if name in kinds]
    per_op_s = sum(k.seconds for k in kinds.values())
    matmul_only_s = sum(k.seconds for k in matmuls)
    ideal_s = flops / peak_flops
    return {"flops": flops, "bytes": sum(k.bytes for k in kinds.values()), "ideal_s": ideal_s,
            "per_op_s": per_op_s, "per_op_mfu": ideal_s / per_op_s,
            "matmul_only_s": matmul_only_s, "matmul_only_mfu": ideal_s / matmul_only_s,
            "matmul_intensity": sum(k.flops for k in matmuls) / sum(k.bytes for k in matmuls)}


def measured_mfu(args, mode: str) -> float | None:
    """MFU measured by ``train_step.py --device cuda`` on ``args.gpu`` for this configuration and mode, if recorded."""
    from train_step import results_path

    path = results_path(torch.device("cuda"))
    if not path.exists():
        return None
    measured = json.loads(path.read_text())
    where = measured.get("recorded", {}).get("machine", measured.get("device", ""))  # older files: "device"
    if args.gpu not in str(where):
        return None
    for entry in measured.get("data", measured)["records"]:
        same = all(entry.get(key) == getattr(args, key) for key in ("backbone", "task", "method", "batch", "crop"))
        if same and mode in entry.get("modes", {}) and "mfu" in entry["modes"][mode]:
            return entry["modes"][mode]["mfu"]
    return None


def analyse(args, peak_flops: float, bandwidth: float) -> dict:
    """Records one step of ``args``' configuration and returns its bounds and per-kind totals."""
    from train_step import Mode

    mode = "bf16" if args.precision == "bf16" else "fast"
    runner = Mode(args, mode, torch.device("cpu"))
    window = getattr(runner.model, "window_size", None)
    traffic = Traffic(peak_flops, bandwidth, window_tokens=window * window if window else None)
    runner.step(0)  # warm-up: caches (transfer functions, attention masks) filled as in a training run
    with traffic:
        runner.step(1)
    result = bounds(traffic.kinds, peak_flops, bandwidth)
    result["kinds"] = {name: vars(totals) for name, totals in sorted(traffic.kinds.items())}
    result["measured_mfu"] = measured_mfu(args, mode)
    return result


def print_report(label: str, result: dict) -> None:
    print(f"\n{label}: {result['flops'] / 1e12:.2f} TFLOP, {result['bytes'] / 1e9:.1f} GB moved per step")
    print(f"{'kind':<14} {'calls':>6} {'GFLOP':>9} {'GB':>8} {'FLOP/B':>7} {'bound ms':>9}")
    for name, kind in sorted(result["kinds"].items(), key=lambda item: -item[1]["seconds"]):
        intensity = kind["flops"] / kind["bytes"] if kind["bytes"] else float("inf")
        print(f"{name:<14} {kind['calls']:>6} {kind['flops'] / 1e9:>9.1f} {kind['bytes'] / 1e9:>8.2f} "
              f"{intensity:>7.0f} {kind['seconds'] * 1e3:>9.2f}")
    measured = result["measured_mfu"]
    print(f"MFU ceiling: per-op {100 * result['per_op_mfu']:.1f} %, matmul-only {100 * result['matmul_only_mfu']:.1f} %"
          f" (matrix products at {result['matmul_intensity']:.0f} FLOP/byte)"
          + (f"; measured {100 * measured:.1f} %" if measured is not None else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", default="swinir")
    parser.add_argument("--tasks", default="deblurring,sr")
    parser.add_argument("--methods", default="sei,supervised")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=48, help="crop size in pixels of the measurements (paper: 48)")
    parser.add_argument("--gpu", type=str.upper, choices=sorted(BANDWIDTH_TBS), default="H100",
                        help="whose peak and bandwidth to use")
    parser.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                        help="the step's precision (bf16: the GPU default; the peak is the bf16 one either way)")
    args = parser.parse_args()
    from train_step import DENSE_BF16_PEAK_TFLOPS

    peak_tflops, bandwidth_tbs = DENSE_BF16_PEAK_TFLOPS[args.gpu], BANDWIDTH_TBS[args.gpu]
    records = []
    for backbone in args.backbones.split(","):
        for task in args.tasks.split(","):
            for method in args.methods.split(","):
                config = argparse.Namespace(**vars(args), backbone=backbone, task=task, method=method, compile=None)
                result = analyse(config, peak_tflops * 1e12, bandwidth_tbs * 1e12)
                print_report(f"{backbone} {task} {method} batch {args.batch} crop {args.crop} {args.precision}, "
                             f"{args.gpu} ({peak_tflops:.0f} TFLOP/s, {bandwidth_tbs} TB/s)", result)
                records.append({"backbone": backbone, "task": task, "method": method, "batch": args.batch,
                                "crop": args.crop, "precision": args.precision, "gpu": args.gpu,
                                "peak_tflops": peak_tflops, "bandwidth_tbs": bandwidth_tbs, **result})
    table = Table(f"Bounds on the model-FLOP utilisation of one {args.precision} step (batch {args.batch}, crop "
                  f"{args.crop}) on an {args.gpu} ({peak_tflops:.0f} TFLOP/s, {bandwidth_tbs} TB/s), from every "
                  "operator's FLOPs and bytes recorded on this machine",
                  ["backbone", "task", "method", "TFLOP", "GB moved", "bound: one kernel per operator",
                   "bound: only the matrix products move memory"],
                  [[r["backbone"], r["task"], r["method"], r["flops"] / 1e12, r["bytes"] / 1e9,
                    f"{r['per_op_s'] * 1e3:.1f} ms, {r['per_op_mfu']:.1%} MFU",
                    f"{r['matmul_only_s'] * 1e3:.1f} ms, {r['matmul_only_mfu']:.1%} MFU"] for r in records])
    record("roofline", [table], {"records": records})


if __name__ == "__main__":
    main()
