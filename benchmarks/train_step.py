"""Benchmark one training step: samples/s, seconds per step and peak memory, optimised against baseline.

    python benchmarks/train_step.py [--backbones swinir,unet-small] [--tasks deblurring,sr] [--batches 2,8]
                                    [--methods sei,supervised,...] [--modes baseline,fast,lean] [--steps 3]
                                    [--device cpu] [--precision fp32|bf16] [--compile]

Each configuration runs in its own process (so peak memory is its own, and an out-of-memory failure is recorded
instead of ending the benchmark), with the modes measured side by side in that process:

- ``baseline``: the straightforward implementation: deepinv's window attention, f(y) and the SURE probe
  f(y + tau b) as two separate evaluations, no checkpointing, eager fp32;
- ``fast``: fused window attention (scaled_dot_product_attention), the probe batched with f(y) in one pass;
- ``lean``: ``fast`` plus activation checkpointing per Swin block (SwinIR only), for memory.

Peak memory is the process's resident set (VmHWM, reset before each mode) on a CPU, max_memory_allocated on a
GPU. Prints a table and writes benchmarks/results/train_step.json (merged with earlier runs' records).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path("benchmarks/results/train_step.json")
ALL_METHODS = "sei,supervised,css,ei-shift,ei-rotate,sure,sei-no-stop-grad"


def peak_rss_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set (Linux)


def build(backbone: str, task: str, mode: str, method_name: str, device: torch.device):
    from sei.methods import build_method
    from sei.models import build_backbone
    from sei.physics import make_physics

    physics = make_physics(task, kernel="Gaussian_R2" if task == "deblurring" else None,
                           sr_factor=2 if task == "sr" else None, noise_level=5).to(device)
    options = {}
    if backbone.startswith("swinir"):
        options = {"fused_attention": mode != "baseline", "checkpointing": mode == "lean"}
    torch.manual_seed(0)
    model = build_backbone(backbone, upscale=physics.upscale, **options).to(device)
    method = build_method(method_name, batched_probe=mode != "baseline")
    return physics, model, method


def run_configuration(args) -> dict:
    """One (backbone, task, batch, method) configuration, every mode, in this process."""
    from sei.rng import make_generator

    device = torch.device(args.device)
    record = {"backbone": args.backbone, "task": args.task, "batch": args.batch, "method": args.method,
              "precision": args.precision, "compile": args.compile, "modes": {}}
    for mode in args.modes.split(","):
        if mode == "lean" and not args.backbone.startswith("swinir"):
            continue
        physics, model, method = build(args.backbone, args.task, mode, args.method, device)
        network = torch.compile(model) if args.compile and mode != "baseline" else model
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        r = physics.upscale
        generator = torch.Generator().manual_seed(1)
        y = torch.rand(args.batch, 3, 48, 48, generator=generator).to(device)
        x = torch.rand(args.batch, 3, 48 * r, 48 * r, generator=generator).to(device)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16" and mode != "baseline")
        times = []
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        reset_peak()
        try:
            for step in range(args.steps + 1):  # the first step warms up (and compiles)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                with autocast:
                    loss = method(network, physics, y, x, generator=make_generator(0, "loss", step)).loss
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if step > 0:
                    times.append(time.perf_counter() - started)
            seconds = sorted(times)[len(times) // 2]
            memory = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak_rss_mb())
            record["modes"][mode] = {"seconds_per_step": seconds, "samples_per_s": args.batch / seconds,
                                     "peak_memory_mb": memory, "loss": float(loss)}
        except (RuntimeError, MemoryError) as error:  # out of memory (address-space limit or CUDA)
            record["modes"][mode] = {"error": str(error).splitlines()[0][:200]}
        del physics, model, method, optimizer, network
    base = record["modes"].get("baseline", {})
    for mode, values in record["modes"].items():
        if "seconds_per_step" in values and "seconds_per_step" in base:
            values["speedup_vs_baseline"] = base["seconds_per_step"] / values["seconds_per_step"]
    return record


def child(args) -> None:
    if args.memory_limit_gb:
        limit = int(args.memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    torch.set_num_threads(args.threads or torch.get_num_threads())
    print(json.dumps(run_configuration(args)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="swinir,unet-small")
    parser.add_argument("--tasks", default="deblurring,sr")
    parser.add_argument("--batches", default="2,8")
    parser.add_argument("--methods", default=ALL_METHODS)
    parser.add_argument("--modes", default="baseline,fast,lean")
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--compile", action="store_true", help="torch.compile the fast and lean modes")
    parser.add_argument("--threads", type=int, help="torch threads (default: PyTorch's)")
    parser.add_argument("--memory-limit-gb", type=float, default=20.0,
                        help="address-space limit per configuration, so that out-of-memory is recorded (CPU)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    previous = json.loads(RESULTS.read_text())["records"] if RESULTS.is_file() else []
    records = []
    print(f"{'backbone':<12}{'task':<12}{'batch':>6} {'method':<18}{'mode':<10}{'s/step':>9}{'samples/s':>11}"
          f"{'peak MB':>10}{'speed-up':>10}")
    for backbone in args.backbones.split(","):
        for task in args.tasks.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                for method in args.methods.split(","):
                    command = [sys.executable, __file__, "--child", "--backbone", backbone, "--task", task,
                               "--batch", str(batch), "--method", method, "--modes", args.modes,
                               "--steps", str(args.steps), "--device", args.device, "--precision", args.precision,
                               "--memory-limit-gb", str(args.memory_limit_gb if args.device == "cpu" else 0)]
                    if args.compile:
                        command.append("--compile")
                    if args.threads:
                        command += ["--threads", str(args.threads)]
                    result = subprocess.run(command, capture_output=True, text=True)
                    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
                    if not lines:
                        record = {"backbone": backbone, "task": task, "batch": batch, "method": method,
                                  "modes": {}, "error": (result.stderr.strip().splitlines() or ["crashed"])[-1][:200]}
                    else:
                        record = json.loads(lines[-1])
                    records.append(record)
                    for mode, values in record["modes"].items() or {"-": {"error": record.get("error")}}.items():
                        if "seconds_per_step" in values:
                            print(f"{backbone:<12}{task:<12}{batch:>6} {method:<18}{mode:<10}"
                                  f"{values['seconds_per_step']:>9.3f}{values['samples_per_s']:>11.2f}"
                                  f"{values['peak_memory_mb']:>10.0f}{values.get('speedup_vs_baseline', 1.0):>9.2f}x",
                                  flush=True)
                        else:
                            print(f"{backbone:<12}{task:<12}{batch:>6} {method:<18}{mode:<10} failed: "
                                  f"{values.get('error')}", flush=True)
    keys = {(r["backbone"], r["task"], r["batch"], r["method"], r.get("precision"), r.get("compile")) for r in records}
    kept = [r for r in previous
            if (r["backbone"], r["task"], r["batch"], r["method"], r.get("precision"), r.get("compile")) not in keys]
    device_name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"records": kept + records, "device": device_name, "cpu_count": os.cpu_count(),
                                   "torch": torch.__version__, "platform": platform.platform()}, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
