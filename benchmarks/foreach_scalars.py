"""Cost of a scalar argument to CPU ``torch._foreach_*`` ops: a Python number against a 0-d tensor.

    python benchmarks/foreach_scalars.py            # 1,000 tensors of 25x40, 2 threads

On a CPU the foreach ops loop over the tensors and wrap a Python number in a new tensor for
each one; :func:`gradhub.kernels.foreach_scalar` passes a 0-d tensor instead (and
:func:`gradhub.kernels.foreach_add_scalar_` adds one, with ``alpha`` so that torch takes the
tensor overload). Both forms
run interleaved in one process (3 rounds, medians of 30 calls after 3 warm-up calls).
"""

from __future__ import annotations

import statistics
import time

import torch

from gradhub.kernels import foreach_add_scalar_, foreach_scalar


def median_ms(function, calls: int = 30) -> float:
    for _ in range(3):
        function()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    torch.set_num_threads(2)
    tensors = [torch.rand(25, 40) + 1 for _ in range(1000)]
    scalar = foreach_scalar(1.0, tensors[0])
    print("| op over 1,000 tensors of 25x40 | Python number | 0-d tensor |\n|---|---|---|")
    for round_ in range(3):
        number_mul = median_ms(lambda: torch._foreach_mul_(tensors, 1.0))
        tensor_mul = median_ms(lambda: torch._foreach_mul_(tensors, scalar))
        number_add = median_ms(lambda: torch._foreach_add_(tensors, 0.0))
        tensor_add = median_ms(lambda: foreach_add_scalar_(tensors, 0.0))
        print(f"| mul_ (round {round_ + 1}) | {number_mul:.2f} ms | {tensor_mul:.2f} ms |")
        print(f"| add_ (round {round_ + 1}) | {number_add:.2f} ms | {tensor_add:.2f} ms |")


if __name__ == "__main__":
    main()
