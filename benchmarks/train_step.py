"""Benchmark one training step: samples/s, seconds per step and peak memory, optimised against baseline.

    python benchmarks/train_step.py [--backbones swinir,unet-small] [--tasks deblurring,sr] [--batches 2,8]
                                    [--methods sei,supervised,...] [--modes baseline,fast,checkpointing,lean,bf16]
                                    [--steps 3] [--device cpu] [--compile [MODE]] [--crop 48] [--profile]
                                    [--skip-memory] [--peak-tflops P]

Modes:

- ``baseline``: the straightforward implementation: deepinv's window attention, f(y) and the SURE probe
  f(y + tau b) as two separate evaluations, no checkpointing, eager fp32, default memory allocator settings;
- ``fast``: the probe batched with f(y) in one pass; fused attention (scaled_dot_product_attention) and the fused
  Adam on GPUs; channels-last convolutions for the U-Net; ``--compile`` adds torch.compile (``--compile
  reduce-overhead``: with CUDA graphs on GPUs, each step marked as one). Same numerics as ``baseline`` (up to
  float rounding);
- ``checkpointing``: ``fast`` plus activation checkpointing per Swin block (``sei train --checkpointing``);
- ``lean``: ``checkpointing`` plus freed memory returned to the system (``sei train --lean-memory``);
- ``bf16``: ``fast`` under bfloat16 autocast (other numerics: reported apart).

Speed: on a CPU the modes of a configuration run in one process, their steps interleaved, after one warm-up step each,
so the speed-ups are ratios measured side by side (median of ``--steps``); memory: each mode runs one step in a
process of its own, because a process's peak resident set (VmHWM) and the allocator's retained memory carry over from
mode to mode. On a GPU each mode runs in a process of its own (a compiled mode is compiled once), timed after its
warm-up, with its peak ``max_memory_allocated``. Model-FLOP utilisation (MFU) is the step's floating-point operations,
counted once per configuration with ``torch.utils.flop_counter`` on the eager model, per second, over
``--peak-tflops`` (default: the dense bf16 peak of an H100/H200, 989 TFLOP/s, on those GPUs). Out-of-memory failures
are recorded. ``--profile`` runs one more step of each mode under ``torch.profiler`` and records where a step goes:
operator calls (each one a dispatch, most of them a kernel launch on a GPU), kernels launched, and the GPU's busy
time against the step's time (a step whose GPU is busy a small fraction of it is bound by launches, not arithmetic);
the operators that took most time are written to benchmarks/results/train_step_profile[_cuda].txt. Prints a table and
records it in benchmarks/results/train_step.json, or train_step_cuda.json on a GPU (merged with earlier runs' records).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from recording import Table, record, recorded_data

RESULTS_DIR = Path("benchmarks/results")
DENSE_BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0}  # NVIDIA's dense (no sparsity) bf16 tensor-core peaks
FLOP_COUNT_BATCH = 8  # step_flops counts at this batch at most, then scales to the batch
ALL_METHODS = "sei,supervised,css,ei-shift,ei-rotate,sure,sei-no-stop-grad"


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def swin_only_modes(modes: str, backbone: str) -> list[str]:
    """The modes that apply to ``backbone`` (checkpointing is SwinIR's)."""
    return [m for m in modes.split(",") if m not in ("checkpointing", "lean") or backbone.startswith("swinir")]


def mode_compile(args, mode: str) -> str | None:
    """The torch.compile mode a benchmark mode runs in: ``--compile``'s, except for the eager baseline."""
    return args.compile if mode != "baseline" else None


def build(backbone: str, task: str, mode: str, method_name: str, device: torch.device, compile_: str | None):
    """Operator, network (as called), parameters and method of one mode (compiled in ``compile_`` unless None)."""
    from sei.losses.registry import build_method
    from sei.models import build_backbone
    from sei.models.compilation import compile_network
    from sei.physics import make_physics

    physics = make_physics(task, kernel="Gaussian_R2" if task == "deblurring" else None,
                           sr_factor=2 if task == "sr" else None, noise_level=5).to(device)
    options = {}
    if backbone.startswith("swinir"):
        options = {"fused_attention": mode != "baseline", "checkpointing": mode in ("checkpointing", "lean")}
    torch.manual_seed(0)
    model = build_backbone(backbone, upscale=physics.upscale, **options).to(device)
    if mode != "baseline" and backbone.startswith("unet"):
        model = model.to(memory_format=torch.channels_last)
    network = compile_network(model, compile_) if compile_ else model
    method = build_method(method_name, batched_probe=mode != "baseline")
    return physics, network, model, method


class Mode:
    """One mode's objects and a function running one training step."""

    def __init__(self, args, mode: str, device: torch.device) -> None:
        from sei.models.compilation import mark_step_begin
        from sei.core.rng import make_generator

        self.name = mode
        self.compile_mode = mode_compile(args, mode)
        self.physics, self.network, self.model, self.method = build(args.backbone, args.task, mode, args.method,
                                                                    device, self.compile_mode)
        fused = device.type == "cuda" and mode != "baseline"  # as sei train: the fused Adam on GPUs
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-4, fused=fused or None)
        generator = torch.Generator().manual_seed(1)
        r = self.physics.upscale
        self.y = torch.rand(args.batch, 3, args.crop, args.crop, generator=generator).to(device)
        self.x = torch.rand(args.batch, 3, args.crop * r, args.crop * r, generator=generator).to(device)
        self.device = device
        self.make_generator = make_generator
        self.mark_step_begin = mark_step_begin
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16) if mode == "bf16" else nullcontext()
        self.loss = float("nan")

    def step(self, index: int) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        started = time.perf_counter()
        self.mark_step_begin(self.compile_mode)
        with self.autocast:
            loss = self.method(self.network, self.physics, self.y, self.x,
                               generator=self.make_generator(0, "loss", index)).loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.loss = float(loss.detach())
        return time.perf_counter() - started


def profile_step(runner: Mode, index: int, seconds_per_step: float, label: str) -> dict:
    """Where one more step of ``runner`` goes, under ``torch.profiler``: operator calls (the outermost; those they
    make in turn counted apart), kernels launched and the GPU's busy time against ``seconds_per_step`` (the
    unprofiled step), and the operators that took most time, appended to the profile text file under ``label``."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = runner.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])
    with profile(activities=activities) as profiler:
        runner.step(index)
    events = profiler.events()
    kernels = [event for event in events if event.device_type == DeviceType.CUDA]
    busy_s = sum(event.time_range.elapsed_us() for event in kernels) / 1e6
    operators = [event for event in events if event.name.startswith("aten::")]
    outermost = [event for event in operators  # the calls a step makes, without those the operators make
                 if event.cpu_parent is None or not event.cpu_parent.name.startswith("aten::")]
    result = {"operator_calls": len(outermost), "nested_operator_calls": len(operators) - len(outermost),
              "kernels": len(kernels)}
    if on_gpu:
        result.update(gpu_busy_s=busy_s, gpu_busy_fraction=busy_s / seconds_per_step)
    sort_by = "self_device_time_total" if on_gpu else "self_cpu_time_total"
    table = profiler.key_averages().table(sort_by=sort_by, row_limit=20, max_name_column_width=60)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"train_step_profile{'_cuda' if on_gpu else ''}.txt"
    with path.open("a") as text:
        text.write(f"== {label}: {json.dumps(result)}\n{table}\n")
    return result


def step_flops(args, device: torch.device) -> float:
    """Floating-point operations of one training step (forward and backward), counted on the eager model.

    Counted at batch :data:`FLOP_COUNT_BATCH` at most and scaled to the batch (the work is per sample): the eager
    float32 step of a large batch may not fit where its optimised modes do.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counted = argparse.Namespace(**{**vars(args), "batch": min(args.batch, FLOP_COUNT_BATCH)})
    runner = Mode(counted, "baseline", device)  # the baseline is never compiled (mode_compile)
    counter = FlopCounterMode(display=False)
    with counter:
        runner.step(0)
    return float(counter.get_total_flops()) * args.batch / counted.batch


def default_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in DENSE_BF16_PEAK_TFLOPS.items() if key in name), None)


def label(args, mode: str) -> str:
    """One configuration and mode, in words."""
    compiled = f", compile {mode_compile(args, mode)}" if mode_compile(args, mode) else ""
    return f"{args.backbone} {args.task} {args.method} batch {args.batch} crop {args.crop} {mode}{compiled}"


def compile_warmup_steps(args, mode: str) -> int:
    """Warm-up steps: one, or four for a compiled mode, whose steps see new input sizes (random scales)."""
    return 4 if mode_compile(args, mode) else 1


def child_sequential(args, device: torch.device) -> dict:
    """GPU: each given mode built, warmed up (compiled), timed and measured, one after the other."""
    results: dict[str, dict] = {}
    for name in swin_only_modes(args.modes, args.backbone):
        runner = None
        try:
            torch.cuda.reset_peak_memory_stats(device)
            runner = Mode(args, name, device)
            warmup = compile_warmup_steps(args, name)
            for index in range(warmup):  # compilation: one graph per input size the method draws
                runner.step(index)
            times = sorted(runner.step(index) for index in range(warmup, warmup + args.steps))
            seconds = times[len(times) // 2]
            results[name] = {"seconds_per_step": seconds, "samples_per_s": args.batch / seconds,
                             "loss": runner.loss, "peak_memory_mb": peak_memory_mb(device)}
            if args.profile:
                results[name]["profile"] = profile_step(runner, warmup + args.steps, seconds, label(args, name))
        except (RuntimeError, MemoryError) as error:
            results[name] = {"error": str(error).splitlines()[0][:200]}
        del runner
    if args.count_flops:  # the same for every mode of a configuration: counted once
        results["flops_per_step"] = step_flops(args, device)
    return results


def child_timing(args, device: torch.device) -> dict:
    modes = swin_only_modes(args.modes, args.backbone)
    results: dict[str, dict] = {}
    runners = []
    for name in modes:
        if name == "lean":
            continue  # its memory settings are process-wide: timed in its own process (child_memory)
        try:
            runner = Mode(args, name, device)
            for index in range(compile_warmup_steps(args, name)):  # warm-up (and compilation)
                runner.step(index)
            runners.append(runner)
        except (RuntimeError, MemoryError) as error:
            results[name] = {"error": str(error).splitlines()[0][:200]}
    times: dict[str, list[float]] = {r.name: [] for r in runners}
    for index in range(1, args.steps + 1):
        for runner in runners:
            try:
                times[runner.name].append(runner.step(index))
            except (RuntimeError, MemoryError) as error:
                results[runner.name] = {"error": str(error).splitlines()[0][:200]}
    for runner in runners:
        if runner.name in results:
            continue
        seconds = sorted(times[runner.name])[len(times[runner.name]) // 2]
        results[runner.name] = {"seconds_per_step": seconds, "samples_per_s": args.batch / seconds,
                                "loss": runner.loss}
        if args.profile:
            results[runner.name]["profile"] = profile_step(runner, args.steps + 1, seconds, label(args, runner.name))
    return results


def child_memory(args, device: torch.device) -> dict:
    from sei.core.memory import release_freed_memory

    mode = args.modes
    if mode == "lean":
        release_freed_memory()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        runner = Mode(args, mode, device)
        seconds = [runner.step(0)]
        if mode == "lean":  # lean is not in the side-by-side timing (process-wide settings): time it here
            seconds += [runner.step(i) for i in range(1, args.steps + 1)]
        result = {"peak_memory_mb": peak_memory_mb(device)}
        if mode == "lean":
            timed = sorted(seconds[1:])
            result.update(seconds_per_step=timed[len(timed) // 2], samples_per_s=args.batch / timed[len(timed) // 2],
                          loss=runner.loss)
        return result
    except (RuntimeError, MemoryError) as error:
        return {"error": str(error).splitlines()[0][:200]}


def run_child(args, what: str, modes: str, count_flops: bool = False) -> dict:
    command = [sys.executable, __file__, "--child", what, "--backbone", args.backbone, "--task", args.task,
               "--batch", str(args.batch), "--method", args.method, "--modes", modes, "--steps", str(args.steps),
               "--device", args.device, "--memory-limit-gb", str(args.memory_limit_gb), "--crop", str(args.crop)]
    if args.compile:
        command += ["--compile", args.compile]
    if args.profile and what == "timing":
        command.append("--profile")
    if count_flops:
        command.append("--count-flops")
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=args.child_timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"stopped after {args.child_timeout} s"}
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if not lines:
        tail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
        return {"error": f"process failed ({'killed, out of memory?' if result.returncode < 0 else tail[:150]})"}
    return json.loads(lines[-1])


def results_path(device: torch.device) -> Path:
    """One file per kind of device: records measured on a CPU and on a GPU are never mixed."""
    return RESULTS_DIR / ("train_step_cuda.json" if device.type == "cuda" else "train_step.json")


def results_table(records: list[dict], device: torch.device) -> Table:
    """One row per configuration and mode: time, samples/s, speed-up, peak memory and utilisation."""
    rows = []
    for r in records:
        for mode, values in r["modes"].items():
            if "seconds_per_step" not in values:
                rows.append([r["backbone"], r["task"], r["batch"], r["method"], mode, values.get("error", "-"), None,
                             None, values.get("peak_memory_mb"), None])
                continue
            rows.append([r["backbone"], r["task"], r["batch"], r["method"], mode, values["seconds_per_step"],
                         values["samples_per_s"], values.get("speedup_vs_baseline"), values.get("peak_memory_mb"),
                         values.get("mfu")])
    where = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    return Table(f"One training step on the {where} (crop {records[0].get('crop', 48) if records else 48} px; "
                 "speed-ups against the baseline mode measured in the same run)",
                 ["backbone", "task", "batch", "method", "mode", "s/step", "samples/s", "speed-up", "peak MB", "MFU"],
                 rows)


def save_results(previous: list[dict], records: list[dict], device: torch.device, echo: bool = False) -> None:
    """Record this run's records over earlier runs' records of the same configurations."""
    def key(record: dict) -> tuple:
        return (record["backbone"], record["task"], record["batch"], record["method"], record.get("compile"),
                record.get("crop", 48))

    keys = {key(r) for r in records}
    merged = [r for r in previous if key(r) not in keys] + records
    record(results_path(device).stem, [results_table(merged, device)], {"records": merged}, device=str(device),
           echo=echo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbones", default="swinir,unet-small")
    parser.add_argument("--tasks", default="deblurring,sr")
    parser.add_argument("--batches", default="2,8")
    parser.add_argument("--methods", default=ALL_METHODS)
    parser.add_argument("--modes", default="baseline,fast,checkpointing,lean,bf16")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per mode after one warm-up step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                        help="torch.compile the optimised modes, in torch.compile's MODE (default; reduce-overhead "
                             "replays CUDA graphs on GPUs; max-autotune; max-autotune-no-cudagraphs)")
    parser.add_argument("--crop", type=int, default=48, help="crop size in pixels of the measurements (paper: 48)")
    parser.add_argument("--profile", action="store_true",
                        help="profile one more step per mode (operator calls, kernels, GPU busy time)")
    parser.add_argument("--skip-memory", action="store_true", help="time only")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak for model-FLOP utilisation (default: dense bf16 on H100/H200)")
    parser.add_argument("--memory-limit-gb", type=float, default=20.0,
                        help="address-space limit per process on a CPU, so that running out of memory is recorded")
    parser.add_argument("--child-timeout", type=float, default=1800, help="seconds allowed per configuration")
    parser.add_argument("--count-flops", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("timing", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--backbone", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--method", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.child:
        if device.type == "cpu" and args.memory_limit_gb:
            limit = int(args.memory_limit_gb * 2**30)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        if args.child == "timing":
            result = child_sequential(args, device) if device.type == "cuda" else child_timing(args, device)
        else:
            result = child_memory(args, device)
        print(json.dumps(result))
        return
    previous = recorded_data(results_path(device).stem).get("records", [])
    records = []
    peak_tflops = args.peak_tflops or default_peak_tflops(device)
    print(f"{'backbone':<12}{'task':<12}{'batch':>6} {'method':<18}{'mode':<10}{'s/step':>9}{'samples/s':>11}"
          f"{'speed-up':>10}{'peak MB':>10}{'TFLOP/s':>9}{'MFU':>7}")
    for backbone in args.backbones.split(","):
        for task in args.tasks.split(","):
            for batch in (int(b) for b in args.batches.split(",")):
                for method in args.methods.split(","):
                    args.backbone, args.task, args.batch, args.method = backbone, task, batch, method
                    modes = swin_only_modes(args.modes, backbone)
                    if device.type == "cuda":  # one process per mode: a mode that ran out of memory leaves nothing
                        timing = {}
                        for mode in modes:
                            result = run_child(args, "timing", mode, count_flops="flops_per_step" not in timing)
                            timing.update({mode: result} if "error" in result else result)  # a failure is its own
                    else:
                        timing = run_child(args, "timing", ",".join(modes))
                    flops = timing.pop("flops_per_step", None)
                    record = {"backbone": backbone, "task": task, "batch": batch, "method": method,
                              "compile": args.compile or False, "crop": args.crop, "flops_per_step": flops,
                              "peak_tflops": peak_tflops,
                              "modes": {}}
                    for mode in modes:
                        values = dict(timing.get(mode, {})) if "error" not in timing else {"error": timing["error"]}
                        if flops and "seconds_per_step" in values:
                            values["tflops_per_s"] = flops / values["seconds_per_step"] / 1e12
                            if peak_tflops:
                                values["mfu"] = values["tflops_per_s"] / peak_tflops
                        if device.type != "cuda" and (not args.skip_memory or mode == "lean"):  # GPU: measured above
                            memory = run_child(args, "memory", mode)
                            values.update({k: v for k, v in memory.items() if k != "error" or "error" not in values})
                        record["modes"][mode] = values
                    base = record["modes"].get("baseline", {})
                    for values in record["modes"].values():
                        if "seconds_per_step" in values and "seconds_per_step" in base:
                            values["speedup_vs_baseline"] = base["seconds_per_step"] / values["seconds_per_step"]
                    records.append(record)
                    for mode, values in record["modes"].items():
                        speed = (f"{values['seconds_per_step']:>9.3f}{values['samples_per_s']:>11.2f}"
                                 f"{values.get('speedup_vs_baseline', float('nan')):>9.2f}x"
                                 if "seconds_per_step" in values else f"{'-':>9}{'-':>11}{'-':>10}")
                        memory = f"{values['peak_memory_mb']:>10.0f}" if "peak_memory_mb" in values else f"{'-':>10}"
                        rate = (f"{values['tflops_per_s']:>9.1f}" if "tflops_per_s" in values else f"{'-':>9}")
                        rate += f"{values['mfu']:>7.1%}" if "mfu" in values else f"{'-':>7}"
                        note = f"  {values['error']}" if "error" in values else ""
                        print(f"{backbone:<12}{task:<12}{batch:>6} {method:<18}{mode:<10}{speed}{memory}{rate}{note}",
                              flush=True)
                        if "profile" in values:
                            profile = values["profile"]
                            busy = (f", GPU busy {profile['gpu_busy_fraction']:.0%} of the step"
                                    if "gpu_busy_fraction" in profile else "")
                            print(f"{'':<12}profile: {profile['operator_calls']} operator calls, "
                                  f"{profile['kernels']} kernels{busy}", flush=True)
                    save_results(previous, records, device)  # after every configuration: a stopped run keeps them
    save_results(previous, records, device, echo=True)


if __name__ == "__main__":
    main()
