"""Speed of SwinIR's matrix products at the paper's sizes and with their sizes padded to a multiple of 8, 16, ...

    python benchmarks/gemm_shapes.py [--device cpu|cuda] [--tokens 36864] [--dtype bf16] [--multiples 1,8,16,32]
                                     [--repeats 20]

The paper's SwinIR has 180 channels (6 heads of 30) and an MLP of 360: its products are ``M x 180`` by
``180 x 540`` (qkv), ``180 x 180`` (proj), ``180 x 360`` (fc1) and ``360 x 180`` (fc2), ``M`` the tokens of a
batch (36,864 for an SEI step at batch 8 of 48x48 crops: f(y) and the SURE probe, 16 images of 2,304 pixels).
180 and 540 bf16 elements are rows of 360 and 1,080 bytes, not multiples of 16 bytes, which GPU matrix-product
kernels prefer (vectorised, tensor-memory-accelerator loads). Each product runs forward and backward (the input's
and the weight's gradients, as in training) at the paper's sizes and with every head and the MLP zero-padded to a
multiple of ``m`` channels (the same result in the first 180 channels); the table gives the time, the *paper's*
FLOPs per second (padding adds work that is not counted) and the bytes moved per second. A padded row faster
than the paper's says that padding the network's channels would pay. Prints a table and records it in
benchmarks/results/gemm_shapes[_cuda].json.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from recording import Table, record
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def swin_products(channels: int, heads: int, mlp_ratio: float, multiple: int) -> dict[str, tuple[int, int]]:
    """``(in, out)`` sizes of a Swin block's four products, each head and the MLP padded to ``multiple``."""
    padded = heads * round_up(channels // heads, multiple)
    hidden = round_up(int(channels * mlp_ratio), multiple)
    return {"qkv": (padded, 3 * padded), "proj": (padded, padded), "fc1": (padded, hidden), "fc2": (hidden, padded)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_product(tokens: int, sizes: tuple[int, int], dtype: torch.dtype, device: torch.device,
                 repeats: int) -> float:
    """Median seconds of one ``tokens x in`` by ``in x out`` product, forward and backward (both gradients)."""
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(tokens, sizes[0], generator=generator).to(device, dtype).requires_grad_()
    weight = torch.randn(sizes[1], sizes[0], generator=generator).to(device, dtype).div_(sizes[0] ** 0.5)
    weight.requires_grad_()
    bias = torch.zeros(sizes[1], device=device, dtype=dtype, requires_grad=True)
    upstream = torch.randn(tokens, sizes[1], generator=generator).to(device, dtype)
    times = []
    for index in range(repeats + 2):  # two warm-up runs (kernel selection, caches)
        synchronize(device)
        started = time.perf_counter()
        output = F.linear(inputs, weight, bias)
        torch.autograd.backward(output, upstream)
        synchronize(device)
        if index >= 2:
            times.append(time.perf_counter() - started)
        inputs.grad = weight.grad = bias.grad = None
    return statistics.median(times)


def product_bytes(tokens: int, sizes: tuple[int, int], element: int) -> int:
    """Least bytes a forward and backward pass moves: x, W, y forward; dy, W, dx and x, dy, dW backward."""
    inputs, outputs = tokens * sizes[0], tokens * sizes[1]
    weight = sizes[0] * sizes[1]
    return element * ((inputs + weight + outputs) + (outputs + weight + inputs) + (inputs + outputs + weight))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tokens", type=int, default=None,
                        help="rows M (default: 36864 on a GPU, an SEI step at batch 8; 4608 on a CPU, batch 1)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    parser.add_argument("--multiples", default="1,8,16,32", help="pad each head and the MLP to these multiples")
    parser.add_argument("--channels", type=int, default=180)
    parser.add_argument("--heads", type=int, default=6)
    parser.add_argument("--mlp-ratio", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    device = torch.device(args.device)
    tokens = args.tokens or (36864 if device.type == "cuda" else 4608)
    dtype = DTYPES[args.dtype]
    element = torch.finfo(dtype).bits // 8
    paper = swin_products(args.channels, args.heads, args.mlp_ratio, 1)
    records = []
    for name, sizes in paper.items():
        paper_flops = 6 * tokens * sizes[0] * sizes[1]  # forward, input gradient, weight gradient
        reference = None
        for multiple in (int(m) for m in args.multiples.split(",")):
            padded = swin_products(args.channels, args.heads, args.mlp_ratio, multiple)[name]
            seconds = time_product(tokens, padded, dtype, device, args.repeats)
            reference = reference or seconds
            gigabytes_per_s = product_bytes(tokens, padded, element) / seconds / 1e9
            records.append({"product": name, "multiple": multiple, "in": padded[0], "out": padded[1],
                            "seconds": seconds, "paper_tflops_per_s": paper_flops / seconds / 1e12,
                            "gigabytes_per_s": gigabytes_per_s, "speedup_vs_paper_sizes": reference / seconds})
    table = Table(f"SwinIR's four products, {args.dtype}, {tokens} tokens, forward and both gradients, each head and "
                  "the MLP zero-padded to a multiple (TFLOP/s count the paper's sizes only)",
                  ["product", "multiple", "in x out", "ms", "paper TFLOP/s", "GB/s", "vs paper sizes"],
                  [[r["product"], r["multiple"], f"{r['in']}x{r['out']}", 1e3 * r["seconds"], r["paper_tflops_per_s"],
                    r["gigabytes_per_s"], r["speedup_vs_paper_sizes"]] for r in records])
    record(f"gemm_shapes{'_cuda' if device.type == 'cuda' else ''}", [table],
           {"records": records, "tokens": tokens, "dtype": args.dtype}, device=str(device))


if __name__ == "__main__":
    main()
