"""Time per optimizer step: gradhub AdamP/SGDP/DiffGrad against peers and torch.optim references.

    python benchmarks/optimizers.py                      # both allocators, every set, every candidate
    python benchmarks/optimizers.py --sets big --only gradhub official
    python benchmarks/optimizers.py --gradients tangent  # gradients orthogonal to each weight row
    python benchmarks/optimizers.py --compile-time       # the fused kernels' cold compile, separately
    python benchmarks/optimizers.py --only compiled      # torch.compile of step(), against eager
    python benchmarks/optimizers.py --device cuda        # on a GPU (fused CPU kernels left out)

The fused paths compile their kernels at first use; the benchmark's warm-up steps absorb
that (or it is cached already), and ``--compile-time`` measures it alone. The "compiled" rows
time ``torch.compile(optimizer.step)`` (Inductor) after the warm-up steps have compiled it,
beside the same optimizer's eager step and torch's compiled AdamW.

Per ../shared/BENCHMARKING.md: two threads, warm-up, medians, candidates interleaved in
rounds so drift hits all of them alike, and every figure also measured with freed memory
kept by glibc (``GLIBC_TUNABLES``), the stable one, since first-touch page faults make
allocating optimizers slow by a process-dependent amount. Page faults per step are
reported beside the times. Compare ratios within one run, not absolute times across runs.

"Effective bandwidth" is the minimum traffic of the update divided by the time: 28 bytes
per float32 parameter for the Adam family (read g, w, m, v; write w, m, v), 36 for DiffGrad
(also read and write the previous gradient) and 20 for SGD with momentum (read g, w, b;
write w, b). DiffGrad's ratios are to torch's foreach AdamW, the nearest torch reference.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

STABLE_ALLOCATOR = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=137438953472"
REFERENCES = ("torch-adamw-foreach", "torch-adamw-fused", "torch-sgd-foreach", "torch-sgd-fused")
FUSED_TARGETS = (
    ("gradhub AdamP (fused)", "adam:gradhub-fused", "adam:torch-adamw-fused"),
    ("gradhub DiffGrad (fused)", "diffgrad:gradhub-fused", "adam:torch-adamw-fused"),
    ("gradhub SGDP (fused)", "sgd:gradhub-fused", "sgd:torch-sgd-fused"),
)
"""The fused paths and what the issue measures them against: torch's fused AdamW / SGD."""
BYTES_PER_PARAMETER = {"adam": 28, "sgd": 20, "diffgrad": 36}
RATIO_REFERENCE = {
    "adam": "adam:torch-adamw-foreach",
    "sgd": "sgd:torch-sgd-foreach",
    "diffgrad": "adam:torch-adamw-foreach",
}


def resnet18_shapes() -> list[tuple[int, ...]]:
    """The 62 parameter shapes of torchvision's ResNet-18 (11.69M parameters)."""
    shapes: list[tuple[int, ...]] = [(64, 3, 7, 7), (64,), (64,)]
    in_channels = 64
    for width in (64, 128, 256, 512):
        for block in range(2):
            block_in = in_channels if block == 0 else width
            shapes += [(width, block_in, 3, 3), (width,), (width,), (width, width, 3, 3), (width,), (width,)]
            if block == 0 and width != in_channels:
                shapes += [(width, in_channels, 1, 1), (width,), (width,)]
        in_channels = width
    return shapes + [(1000, 512), (1000,)]


PARAMETER_SETS: dict[str, Callable[[], list[tuple[int, ...]]]] = {
    "resnet18": resnet18_shapes,
    "small": lambda: [(25, 40)] * 2000,
    "big": lambda: [(4096, 8192)],
}
SET_LABELS = {
    "resnet18": "ResNet-18 shapes (11.7M, 62 tensors)",
    "small": "2,000 tensors of 25x40",
    "big": "one 4096x8192 tensor (33.5M)",
}


class CompiledStep:
    """An optimizer whose ``step`` is ``torch.compile(optimizer.step)`` (Inductor)."""

    def __init__(self, optimizer: Any) -> None:
        import torch

        self.optimizer = optimizer
        self.step = torch.compile(optimizer.step)


def candidates(device: str = "cpu") -> list[tuple[str, str, str, Callable[[list[Any]], Any]]]:
    """``(family, name, label, factory)``; the first of each family is the ratio reference.

    On a GPU the fused CPU kernels are left out (gradhub's fused=True is a CPU kernel)."""
    import torch

    import gradhub

    adamp_official = sgdp_official = torch_optimizer = pytorch_optimizer = None
    try:
        import adamp as adamp_official
        import adamp as sgdp_official
    except ImportError:
        pass
    try:
        import torch_optimizer
    except ImportError:
        pass
    try:
        import pytorch_optimizer
    except ImportError:
        pass
    AdamP, SGDP = gradhub.get("adamp"), gradhub.get("sgdp")
    lr = 1e-3
    rows = [
        (
            "adam",
            "torch-adamw-foreach",
            "torch.optim.AdamW (foreach)",
            lambda p: torch.optim.AdamW(p, lr=lr, foreach=True),
        ),
        ("adam", "torch-adamw-fused", "torch.optim.AdamW (fused)", lambda p: torch.optim.AdamW(p, lr=lr, fused=True)),
        ("adam", "gradhub", "gradhub AdamP (default, multi-tensor)", lambda p: AdamP(p, lr=lr)),
        ("adam", "gradhub-single", "gradhub AdamP (foreach=False)", lambda p: AdamP(p, lr=lr, foreach=False)),
        ("adam", "gradhub-fused", "gradhub AdamP (fused=True)", lambda p: AdamP(p, lr=lr, fused=True)),
    ]
    if adamp_official:
        rows.append(("adam", "official", "adamp 0.3.0 AdamP (official)", lambda p: adamp_official.AdamP(p, lr=lr)))
    if torch_optimizer:
        rows.append(("adam", "torch-optimizer", "torch-optimizer AdamP", lambda p: torch_optimizer.AdamP(p, lr=lr)))
    if pytorch_optimizer:
        rows += [
            ("adam", "pytorch-optimizer", "pytorch_optimizer AdamP", lambda p: pytorch_optimizer.AdamP(p, lr=lr)),
            (
                "adam",
                "pytorch-optimizer-foreach",
                "pytorch_optimizer AdamP (foreach)",
                lambda p: pytorch_optimizer.AdamP(p, lr=lr, foreach=True),
            ),
        ]
    momentum = 0.9
    rows += [
        (
            "sgd",
            "torch-sgd-foreach",
            "torch.optim.SGD (foreach)",
            lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum, foreach=True),
        ),
        (
            "sgd",
            "torch-sgd-fused",
            "torch.optim.SGD (fused)",
            lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum, fused=True),
        ),
        ("sgd", "gradhub", "gradhub SGDP (default, multi-tensor)", lambda p: SGDP(p, lr=lr, momentum=momentum)),
        (
            "sgd",
            "gradhub-single",
            "gradhub SGDP (foreach=False)",
            lambda p: SGDP(p, lr=lr, momentum=momentum, foreach=False),
        ),
        (
            "sgd",
            "gradhub-fused",
            "gradhub SGDP (fused=True)",
            lambda p: SGDP(p, lr=lr, momentum=momentum, fused=True),
        ),
    ]
    if sgdp_official:
        rows.append(
            (
                "sgd",
                "official",
                "adamp 0.3.0 SGDP (official)",
                lambda p: sgdp_official.SGDP(p, lr=lr, momentum=momentum),
            )
        )
    if torch_optimizer:
        rows.append(
            (
                "sgd",
                "torch-optimizer",
                "torch-optimizer SGDP",
                lambda p: torch_optimizer.SGDP(p, lr=lr, momentum=momentum),
            )
        )
    if pytorch_optimizer:
        rows += [
            (
                "sgd",
                "pytorch-optimizer",
                "pytorch_optimizer SGDP",
                lambda p: pytorch_optimizer.SGDP(p, lr=lr, momentum=momentum),
            ),
            (
                "sgd",
                "pytorch-optimizer-foreach",
                "pytorch_optimizer SGDP (foreach)",
                lambda p: pytorch_optimizer.SGDP(p, lr=lr, momentum=momentum, foreach=True),
            ),
        ]
    DiffGrad = gradhub.get("diffgrad")
    rows += [
        ("diffgrad", "gradhub", "gradhub DiffGrad (default, multi-tensor)", lambda p: DiffGrad(p, lr=lr)),
        ("diffgrad", "gradhub-single", "gradhub DiffGrad (foreach=False)", lambda p: DiffGrad(p, lr=lr, foreach=False)),
        ("diffgrad", "gradhub-fused", "gradhub DiffGrad (fused=True)", lambda p: DiffGrad(p, lr=lr, fused=True)),
    ]
    if torch_optimizer:
        rows.append(
            ("diffgrad", "torch-optimizer", "torch-optimizer DiffGrad", lambda p: torch_optimizer.DiffGrad(p, lr=lr))
        )
    if pytorch_optimizer:
        rows += [
            (
                "diffgrad",
                "pytorch-optimizer",
                "pytorch_optimizer DiffGrad",
                lambda p: pytorch_optimizer.DiffGrad(p, lr=lr, weight_decouple=False),
            ),
            (
                "diffgrad",
                "pytorch-optimizer-foreach",
                "pytorch_optimizer DiffGrad (foreach)",
                lambda p: pytorch_optimizer.DiffGrad(p, lr=lr, weight_decouple=False, foreach=True),
            ),
        ]
    rows += [
        (
            "adam",
            "torch-adamw-compiled",
            "torch.optim.AdamW (torch.compile of step)",
            lambda p: CompiledStep(torch.optim.AdamW(p, lr=lr, foreach=True)),
        ),
        ("adam", "gradhub-compiled", "gradhub AdamP (torch.compile of step)", lambda p: CompiledStep(AdamP(p, lr=lr))),
        (
            "sgd",
            "torch-sgd-compiled",
            "torch.optim.SGD (torch.compile of step)",
            lambda p: CompiledStep(torch.optim.SGD(p, lr=lr, momentum=momentum, foreach=True)),
        ),
        (
            "sgd",
            "gradhub-compiled",
            "gradhub SGDP (torch.compile of step)",
            lambda p: CompiledStep(SGDP(p, lr=lr, momentum=momentum)),
        ),
        (
            "diffgrad",
            "gradhub-compiled",
            "gradhub DiffGrad (torch.compile of step)",
            lambda p: CompiledStep(DiffGrad(p, lr=lr)),
        ),
    ]
    if device != "cpu":
        rows = [row for row in rows if "fused" not in row[1] or row[1].startswith("torch")]
    return rows


def make_parameters(shapes: list[tuple[int, ...]], gradients: str, seed: int = 0, device: str = "cpu") -> list[Any]:
    """Parameters and gradients drawn on the host (the same on every device), then moved to ``device``."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    params = []
    for shape in shapes:
        param = torch.nn.Parameter(torch.randn(shape, generator=generator, device="cpu").to(device))
        grad = torch.randn(shape, generator=generator, device="cpu").to(device) * 1e-2
        if gradients == "tangent" and param.dim() > 1:
            # What a weight followed by BatchNorm receives: no component along its rows.
            rows = param.detach().reshape(shape[0], -1)
            flat = grad.reshape(shape[0], -1)
            flat -= rows * ((flat * rows).sum(1, keepdim=True) / (rows * rows).sum(1, keepdim=True))
        param.grad = grad
        params.append(param)
    return params


def time_steps(optimizer: Any, warmup: int, steps: int, device: str = "cpu") -> tuple[list[float], float]:
    import torch

    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        optimizer.step()
    synchronize()
    times = []
    faults_before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        synchronize()
        times.append(time.perf_counter() - start)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_before) / steps
    return times, faults


def copy_bandwidth(numel: int = 1 << 25, repeats: int = 15) -> float:
    """GB/s of ``dst.copy_(src)`` on float32 arrays of ``numel`` (8 bytes moved per element), median."""
    import torch

    source, destination = torch.randn(numel), torch.empty(numel)
    for _ in range(3):
        destination.copy_(source)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        destination.copy_(source)
        times.append(time.perf_counter() - start)
    return 8 * numel / statistics.median(times) / 1e9


def compile_times() -> dict[str, float]:
    """Seconds to compile each fused kernel into an empty cache, then to load it from the cache."""
    import tempfile

    from gradhub_adamp.fused import SOURCE as PROJECTED
    from gradhub_diffgrad.diffgrad import SOURCE as DIFFGRAD

    from gradhub.kernels import native

    results = {}
    with tempfile.TemporaryDirectory() as directory:
        os.environ["GRADHUB_KERNEL_CACHE"] = directory
        for name, source in (("adamp_projected", PROJECTED), ("diffgrad", DIFFGRAD)):
            start = time.perf_counter()
            if native.load(name, [source], method=name) is None:
                raise RuntimeError(f"{name}: the kernel did not compile")
            results[f"{name} (compile)"] = time.perf_counter() - start
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    results: dict[str, Any] = {"allocator": "stable" if os.environ.get("GLIBC_TUNABLES") else "default", "sets": {}}
    results["copy_gb_per_s"] = copy_bandwidth()
    wanted = [name for name in args.only if name != "compiled"]
    rows = [
        row
        for row in candidates(args.device)
        if not args.only
        or row[1] in wanted
        or row[1] in REFERENCES
        or ("compiled" in args.only and (row[1].endswith("compiled") or row[1] in ("gradhub", "gradhub-single")))
    ]
    for set_name in args.sets:
        shapes = PARAMETER_SETS[set_name]()
        params = make_parameters(shapes, args.gradients, device=args.device)
        numel = sum(param.numel() for param in params)
        per_candidate: dict[str, dict[str, Any]] = {}
        for _ in range(args.rounds):
            for family, name, label, factory in rows:
                optimizer = factory(params)
                times, faults = time_steps(optimizer, args.warmup, args.steps, args.device)
                del optimizer
                gc.collect()
                entry = per_candidate.setdefault(
                    f"{family}:{name}", {"family": family, "label": label, "medians": [], "faults": []}
                )
                entry["medians"].append(statistics.median(times))
                entry["faults"].append(faults)
        for entry in per_candidate.values():
            seconds = statistics.median(entry.pop("medians"))
            entry["ms"] = seconds * 1e3
            entry["faults_per_step"] = statistics.median(entry.pop("faults"))
            entry["gb_per_s"] = numel * BYTES_PER_PARAMETER[entry["family"]] / seconds / 1e9
        results["sets"][set_name] = {"numel": numel, "tensors": len(params), "candidates": per_candidate}
        del params
        gc.collect()
    return results


def table(results: dict[str, Any]) -> str:
    sets = list(results["sets"])
    header = "| optimizer | " + " | ".join(SET_LABELS[name] for name in sets) + " |"
    lines = [header, "|---|" + "---|" * len(sets)]
    keys = list(next(iter(results["sets"].values()))["candidates"])
    for key in keys:
        family = key.split(":")[0]
        reference = RATIO_REFERENCE[family]
        cells = []
        for name in sets:
            entry = results["sets"][name]["candidates"][key]
            base = results["sets"][name]["candidates"][reference]["ms"]
            cells.append(
                f"{entry['ms']:.1f} ms ({entry['ms'] / base:.2f}x), {entry['gb_per_s']:.0f} GB/s, "
                f"{entry['faults_per_step']:.0f} faults"
            )
        label = results["sets"][sets[0]]["candidates"][key]["label"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fused_table(results: dict[str, Any]) -> str:
    """The issue's targets: fused paths as ratios to torch's fused optimizers, and their share of copy bandwidth."""
    sets = [name for name in results["sets"]]
    copy = results["copy_gb_per_s"]
    lines = [
        "| fused path (vs torch fused) | " + " | ".join(SET_LABELS[name] for name in sets) + " |",
        "|---|" + "---|" * len(sets),
    ]
    for label, key, reference in FUSED_TARGETS:
        cells = []
        for name in sets:
            candidates = results["sets"][name]["candidates"]
            if key not in candidates or reference not in candidates:
                cells.append("-")
                continue
            entry, base = candidates[key], candidates[reference]["ms"]
            cells.append(
                f"{entry['ms']:.1f} ms vs {base:.1f} ({entry['ms'] / base:.2f}x), "
                f"{entry['gb_per_s']:.0f} GB/s = {entry['gb_per_s'] / copy:.0%} of copy"
            )
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\nCopy bandwidth (torch copy_ of 33.5M float32, 2 threads): {copy:.1f} GB/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(PARAMETER_SETS), choices=list(PARAMETER_SETS))
    parser.add_argument("--only", nargs="*", default=[], help="candidate names (torch references always run)")
    parser.add_argument("--gradients", choices=["random", "tangent"], default="random")
    parser.add_argument("--allocator", choices=["both", "default", "stable"], default="both")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the parameters and gradients live there)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--compile-time", action="store_true", help="only time the fused kernels' cold compile")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.compile_time:
        for name, seconds in compile_times().items():
            print(f"{name}: {seconds:.1f} s")
        return
    if args.child:
        print(json.dumps(run(args)))
        return
    allocators = ["default", "stable"] if args.allocator == "both" else [args.allocator]
    everything = []
    for allocator in allocators:
        env = dict(os.environ)
        env.pop("GLIBC_TUNABLES", None)
        if allocator == "stable":
            env["GLIBC_TUNABLES"] = STABLE_ALLOCATOR
        command = [sys.executable, __file__, "--child", *sys.argv[1:]]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        results = json.loads(output.strip().splitlines()[-1])
        everything.append(results)
        print(f"\n### {allocator} allocator, {args.gradients} gradients, {args.threads} threads, median ms per step\n")
        print(table(results))
        print(f"\n### fused paths, {allocator} allocator\n")
        print(fused_table(results))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(everything, handle, indent=2)


if __name__ == "__main__":
    main()
