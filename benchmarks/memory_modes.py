"""The memory-versus-time trade-off of ``sei train --memory none|checkpointing|lean`` for one training step.

    python benchmarks/memory_modes.py [--backbone swinir] [--task deblurring] [--method sei] [--batch 8]
                                     [--crop 48] [--threads 2] [--steps 3] [--modes none,checkpointing,lean]
                                     [--precision 32-true|bf16-mixed] [--allocators sei,glibc]

Default: the paper's SwinIR SEI step (Gaussian_R2 deblurring, noise level 5, batch 8 of 48x48 crops) on two CPU
threads. Each mode runs in a process of its own (a process's peak resident set, VmHWM, and the allocator's
settings and retained memory would carry over), set up as ``sei train`` sets it up (:mod:`sei.training.memory_plan`),
with an address-space limit of ``--limit-fraction`` of the memory available so that a mode that does not fit is
recorded as out of memory instead of bringing the machine down. Seconds per step are the median of ``--steps``
steps after one warm-up step; the ratios are to mode ``none`` (to ``checkpointing`` where ``none`` did not fit).
The trade-off curve (peak memory against seconds per step, a point per mode) goes next to the JSON as a PNG.
``--precision bf16-mixed`` runs the step as ``sei train`` does under ``--precision auto`` on a CPU with native bf16:
the network under bf16 autocast, the operator in float32 (:func:`sei.physics.base.float32_physics`).
``--allocators``: ``sei`` runs a mode with the glibc settings the ``sei`` command starts with
(:data:`sei.core.memory.COALESCING_TUNABLES`), ``glibc`` with glibc's defaults, ``thp`` with glibc's defaults and
PyTorch's transparent-huge-page allocation (``THP_MEM_ALLOC_ENABLE=1``, read once at start-up); each mode runs
once per allocator. Prints a table (with page faults per step) and records it in
``benchmarks/results/memory_modes.json`` (``--out``: another name), with a plot of the trade-off beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

from recording import RESULTS, Table, record



def child(args: argparse.Namespace) -> dict:
    """One mode: build the step as ``sei train`` does, time it, report the peak resident set."""
    import torch

    from sei.losses.registry import build_method
    from sei.models import build_backbone
    from sei.physics import make_physics
    from sei.physics.base import float32_physics
    from sei.core.rng import make_generator
    from sei.training.memory_plan import MemorySetup

    torch.set_num_threads(args.threads)
    mode = args.child
    physics = make_physics(args.task, kernel="Gaussian_R2" if args.task == "deblurring" else None,
                           sr_factor=2 if args.task == "sr" else None, noise_level=5)
    physics = float32_physics(physics)
    bf16 = args.precision == "bf16-mixed"
    torch.manual_seed(0)
    model = build_backbone(args.backbone, upscale=physics.upscale)
    mode, _, threshold = mode.partition("@")  # lean@MiB: another allocator threshold, for the curve
    setup = MemorySetup(mode, int(threshold) << 20 if threshold else None)
    setup.prepare_process()
    setup.prepare_network(model)
    method = build_method(args.method)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(1)
    r = physics.upscale
    y = torch.rand(args.batch, 3, args.crop, args.crop, generator=generator)
    x = torch.rand(args.batch, 3, args.crop * r, args.crop * r, generator=generator)
    seconds, faults, loss = [], [], float("nan")
    try:
        for index in range(args.steps + 1):
            faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                output = method(model, physics, y, x, generator=make_generator(0, "loss", index))
            optimizer.zero_grad(set_to_none=True)
            output.loss.backward()
            optimizer.step()
            seconds.append(time.perf_counter() - started)
            faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before)
            loss = float(output.loss.detach())
            del output
    except (MemoryError, RuntimeError) as error:
        return {"error": str(error).splitlines()[0][:200]}
    timed = sorted(seconds[1:])
    status = Path("/proc/self/status").read_text()
    return {"peak_rss_gb": int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 2**20,
            "seconds_per_step": timed[len(timed) // 2], "seconds": seconds, "loss": loss,
            "page_faults_per_step": sorted(faults[1:])[len(faults[1:]) // 2]}


def allocator_environment(allocator: str, threads: int) -> dict[str, str]:
    """The child's environment for ``allocator`` (``sei``, ``glibc`` or ``thp``)."""
    from sei.core.memory import (
        COALESCING_TUNABLES, TUNABLES_VARIABLE, coalescing_environment, format_tunables, parse_tunables,
    )

    environment = dict(os.environ, OMP_NUM_THREADS=str(threads))
    own = {k: v for k, v in parse_tunables(environment.pop(TUNABLES_VARIABLE, "")).items()
           if k not in COALESCING_TUNABLES}
    if own:
        environment[TUNABLES_VARIABLE] = format_tunables(own)
    if allocator == "sei":
        return coalescing_environment(environment) or environment
    if allocator == "thp":
        environment["THP_MEM_ALLOC_ENABLE"] = "1"
    return environment


def run_mode(args: argparse.Namespace, mode: str, allocator: str) -> dict:
    command = [sys.executable, __file__, "--child", mode, *(f"--{k}={v}" for k, v in
               (("backbone", args.backbone), ("task", args.task), ("method", args.method), ("batch", args.batch),
                ("crop", args.crop), ("threads", args.threads), ("steps", args.steps),
                ("precision", args.precision)))]
    env = allocator_environment(allocator, args.threads)
    available = int(re.search(r"MemAvailable:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1)) * 1024
    limit = int(available * args.limit_fraction)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    result = subprocess.run(command, capture_output=True, text=True, env=env, preexec_fn=limit_memory)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return {"error": f"process failed ({'killed' if result.returncode < 0 else tail[:200]})"}
    record = json.loads(lines[-1])
    record["address_space_limit_gb"] = limit / 2**30
    return record


def add_ratios(records: list[dict]) -> None:
    """Time and memory ratios to mode ``none``, or to ``checkpointing`` where ``none`` did not fit, or to the first
    mode that ran, with the first allocator that ran."""
    ran = [r for r in records if "seconds_per_step" in r]
    ran = [r for r in ran if r["allocator"] == ran[0]["allocator"]] if ran else ran
    reference = next((r for name in ("none", "checkpointing") for r in ran if r["mode"] == name),
                     ran[0] if ran else None)
    for r in records:
        if reference is not None and "seconds_per_step" in r:
            r["time_ratio"] = r["seconds_per_step"] / reference["seconds_per_step"]
            r["memory_ratio"] = r["peak_rss_gb"] / reference["peak_rss_gb"]
            r["ratio_to"] = reference["mode"]


def plot_tradeoff(records: list[dict], setting: str, path: Path) -> Path | None:
    """Peak memory against time per step, one point per mode that ran: the trade-off curve, as a PNG."""
    ran = [r for r in records if "seconds_per_step" in r]
    if not ran:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    colours = dict(zip(dict.fromkeys(r["allocator"] for r in ran), ("tab:blue", "tab:red", "tab:green")))
    for entry in ran:
        label = f"{entry['mode']}, {entry['allocator']}"
        axes.scatter(entry["peak_rss_gb"], entry["seconds_per_step"], color=colours[entry["allocator"]])
        axes.annotate(label, (entry["peak_rss_gb"], entry["seconds_per_step"]), textcoords="offset points",
                      xytext=(5, 5), fontsize=9)
    axes.set_xlabel("peak resident memory (GB)")
    axes.set_ylabel("seconds per step")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title(setting, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="swinir")
    parser.add_argument("--task", default="deblurring", choices=("deblurring", "sr"))
    parser.add_argument("--method", default="sei")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode, after one warm-up step")
    parser.add_argument("--modes", default="none,checkpointing,lean",
                        help="modes in order; lean@N: lean with allocations above N MiB mapped individually")
    parser.add_argument("--precision", default="32-true", choices=("32-true", "bf16-mixed"))
    parser.add_argument("--allocators", default="sei",
                        help="comma-separated: sei (the sei command's glibc settings), glibc (its defaults), thp "
                             "(defaults and THP_MEM_ALLOC_ENABLE=1); each mode runs with each")
    parser.add_argument("--limit-fraction", type=float, default=0.9,
                        help="address-space limit per mode, as a fraction of the memory available")
    parser.add_argument("--out", type=Path, default=Path("memory_modes.json"),
                        help="the name the results are recorded under in benchmarks/results/")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)), flush=True)
        return
    allocators = args.allocators.split(",")
    if unknown := set(allocators) - {"sei", "glibc", "thp"}:
        parser.error(f"unknown allocators {sorted(unknown)}; valid: sei, glibc, thp")
    runs = [(mode, allocator) for allocator in allocators for mode in args.modes.split(",")]
    records = []
    setting = (f"{args.backbone} {args.method} {args.task}, batch {args.batch} of {args.crop}x{args.crop}, "
               f"{args.threads} threads, {args.precision}")
    for mode, allocator in runs:
        entry = {"mode": mode, "allocator": allocator, **run_mode(args, mode, allocator)}
        records.append(entry)
        add_ratios(records)
        print(f"{mode} ({allocator}): " + (entry["error"] if "error" in entry else
                                             f"{entry['peak_rss_gb']:.2f} GB, {entry['seconds_per_step']:.1f} s/step"),
              flush=True)
        save(args, setting, records, echo=False)  # after every mode: a stopped run keeps them
    save(args, setting, records, echo=True)
    figure = plot_tradeoff(records, setting, (RESULTS / args.out.stem).with_suffix(".png"))
    if figure:
        print(f"wrote {figure}")


def save(args: argparse.Namespace, setting: str, records: list[dict], echo: bool) -> None:
    """Record the modes measured so far as a table."""
    rows = [[r["mode"], r["allocator"], r["error"], None, None, None, None] if "error" in r else
            [r["mode"], r["allocator"], r["peak_rss_gb"], r["seconds_per_step"], r["time_ratio"], r["memory_ratio"],
             r["page_faults_per_step"]] for r in records]
    table = Table(setting, ["mode", "allocator", "peak RSS GB", "s/step", "x time", "x memory", "page faults/step"],
                  rows)
    record(args.out.stem, [table], {"setting": {k: getattr(args, k) for k in (
        "backbone", "task", "method", "batch", "crop", "threads", "steps", "precision", "allocators")},
        "records": records}, echo=echo)


if __name__ == "__main__":
    main()
