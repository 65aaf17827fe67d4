"""Every kind against the library people would use instead, side by side in one process.

    python benchmarks/kinds.py                          # every group, CPU, 2 threads
    python benchmarks/kinds.py --only samplers cg       # some groups
    python benchmarks/kinds.py --rounds 7 --json out.json

Groups (each a module of ``benchmarks/peers/`` with a ``comparisons(args)`` function):
``samplers`` (k-diffusion, diffusers), ``hessian`` (PyHessian), ``cg`` (scipy),
``functional`` (AnyLoss inline, pytorch_revgrad), ``tract`` (torch-tract), ``groco`` (diffsort).
Each comparison runs gradhub's call and the peer's on the same inputs, checks the outputs agree
(``check``) before anything is timed, then
times both in interleaved rounds: per round the median of ``--repeats`` calls of each, the
figure the median over rounds; the ratio is gradhub / peer and the spread is the range of the
per-round ratios, so a reader sees the noise beside the figure.

Thread pools. torch's OpenMP threads spin for a while after a parallel region and numpy's
BLAS (OpenBLAS or MKL) keeps its own; interleaving the two makes each wait on the other's
spinning threads. The driver caps every pool at ``--threads`` before numpy or torch is
imported, sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning between
regions) and sleeps ``--pause`` seconds between a gradhub call's timing and its peer's, so
neither library runs while the other's threads are still awake.

Per ../shared/BENCHMARKING.md: warm-up calls, medians, candidates interleaved, ratios within
one run, the CPU named in the output (``lscpu``'s model name), and freed memory kept by glibc
(``--allocator stable``, the default: the script re-executes itself with ``GLIBC_TUNABLES`` set),
so a candidate that allocates is not timed on first-touch page faults that depend on the process.
Peers: ``pip install -r requirements-bench.txt`` and ``pip install --no-deps k-diffusion==0.1.1.post1``
(see that file).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GROUPS = ("samplers", "hessian", "cg", "functional", "tract", "groco")
STABLE_ALLOCATOR = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=137438953472"


@dataclass
class Comparison:
    """One row: gradhub's call against a peer's, on the same inputs."""

    group: str
    name: str
    """What is compared, e.g. ``"heun_edm vs k-diffusion sample_heun, conv denoiser, float32"``."""
    ours: Callable[[], Any]
    peer: Callable[[], Any]
    check: Callable[[Any, Any], None]
    """Raises (with the difference) unless the two outputs agree; run once before timing."""
    peer_name: str = ""
    repeats: int = 5
    sync: Callable[[], None] = field(default=lambda: None)
    """Called after each timed call (``torch.cuda.synchronize`` on a GPU)."""


@dataclass
class Row:
    group: str
    name: str
    peer_name: str
    ours_ms: float
    peer_ms: float
    ratio: float
    spread: tuple[float, float]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _time(call: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(comparison: Comparison, rounds: int, warmup: int, pause: float) -> Row:
    comparison.check(comparison.ours(), comparison.peer())
    for _ in range(warmup):
        comparison.ours()
        comparison.peer()
    ours, peer = [], []
    for index in range(rounds):
        order = [(comparison.ours, ours), (comparison.peer, peer)]
        for call, into in order if index % 2 == 0 else order[::-1]:
            time.sleep(pause)
            into.append(_time(call, comparison.repeats, comparison.sync))
    ratios = [a / b for a, b in zip(ours, peer)]
    return Row(
        comparison.group,
        comparison.name,
        comparison.peer_name,
        1e3 * statistics.median(ours),
        1e3 * statistics.median(peer),
        statistics.median(ours) / statistics.median(peer),
        (min(ratios), max(ratios)),
    )


def table(rows: list[Row]) -> str:
    lines = ["| comparison | gradhub ms | peer ms | ratio (spread over rounds) |", "|---|---|---|---|"]
    for row in rows:
        ours = f"{row.ours_ms:.3g}" if row.ours_ms >= 0.1 else f"{1e3 * row.ours_ms:.3g} µs"
        peer = f"{row.peer_ms:.3g}" if row.peer_ms >= 0.1 else f"{1e3 * row.peer_ms:.3g} µs"
        peer_name = f" ({row.peer_name})" if row.peer_name else ""
        lines.append(
            f"| {row.name}{peer_name} | {ours} | {peer} | {row.ratio:.2f}x ({row.spread[0]:.2f}-{row.spread[1]:.2f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", choices=GROUPS, default=list(GROUPS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--pause", type=float, default=0.05, help="seconds of sleep before each timed block")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--allocator",
        choices=("stable", "default"),
        default="stable",
        help="stable: freed memory kept by glibc (GLIBC_TUNABLES), so first-touch page faults do not time the "
        "allocator (../shared/BENCHMARKING.md); the process re-executes itself with it set",
    )
    args = parser.parse_args(argv)
    if args.allocator == "stable" and os.environ.get("GLIBC_TUNABLES") != STABLE_ALLOCATOR and argv is None:
        os.environ["GLIBC_TUNABLES"] = STABLE_ALLOCATOR
        os.execv(sys.executable, [sys.executable, *sys.argv])
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    allocator = "stable (GLIBC_TUNABLES)" if os.environ.get("GLIBC_TUNABLES") else "default"
    print(
        f"CPU: {cpu_name()}, {args.threads} threads; torch {torch.__version__}; device {args.device}; "
        f"allocator {allocator}\n"
    )
    rows: list[Row] = []
    for group in args.only:
        module = importlib.import_module(f"peers.{group}")
        for comparison in module.comparisons(args):
            row = measure(comparison, args.rounds, args.warmup, args.pause)
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
    print("\n" + table(rows))
    if args.json:
        args.json.write_text(json.dumps([row.__dict__ for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
