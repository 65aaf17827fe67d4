"""Claim checks: seeded, CPU-sized experiments that reproduce a paper's headline claim.

A plugin lists its claim checks in ``MethodSpec.claims`` as import paths of functions
that take no arguments and return a :class:`ClaimResult`. The plugin's tests assert
``result.passed``; ``gradhub demo`` runs them and prints claim, figures and verdict.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gradhub.figures import Figure

__all__ = ["ClaimResult", "claim_paths", "run_claims", "single_thread"]


@dataclass
class ClaimResult:
    """What a claim check measured and whether the paper's claim held."""

    claim: str
    """The paper's claim, in one sentence."""
    criterion: str
    """What counts as reproducing it; a wrong implementation must fail this."""
    measured: dict[str, float]
    """The figures, by name."""
    passed: bool
    methods: tuple[str, ...] = ()
    details: str = ""
    """A small table or note for a person reading the demo's output."""
    figures: list[Figure] = field(default_factory=list)
    """Curves, images and histograms for the demo report (see :mod:`gradhub.figures`)."""
    seconds: float = field(default=0.0, compare=False)
    path: str = ""

    def report(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        figures = "\n".join(f"    {name}: {value:.4g}" for name, value in self.measured.items())
        text = (
            f"[{verdict}] {', '.join(self.methods)}  ({self.path}, {self.seconds:.1f} s)\n"
            f"  claim:     {self.claim}\n  criterion: {self.criterion}\n  measured:\n{figures}"
        )
        if self.details:
            text += "\n" + "\n".join(f"    {line}" for line in self.details.splitlines())
        return text


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """One torch intra-op thread inside the block, the caller's setting restored after.

    Claim checks train tiny models; on a small shared machine (CI: 2 cores) OpenMP threads
    handing such small ops back and forth cost more than they save, and a busy neighbour
    makes a spinning thread 50x slower. Results do not depend on it.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def claim_paths(names: Iterable[str]) -> dict[str, list[str]]:
    """Claim-check import paths of the named methods, each once, with the methods sharing it."""
    import gradhub

    paths: dict[str, list[str]] = {}
    for name in names:
        for path in gradhub.spec(name).claims:
            paths.setdefault(path, []).append(name)
    return paths


def run_claims(names: Iterable[str], on_result: Callable[[ClaimResult], None] | None = None) -> list[ClaimResult]:
    """Run every claim check of the named methods; a check that raises is a failed result.

    ``on_result`` is called with each result as soon as it is in (the CLI prints it).
    """
    from gradhub.registry import import_target

    results = []
    for path, methods in claim_paths(names).items():
        start = time.perf_counter()
        try:
            result = import_target(path)()
        except Exception as error:
            result = ClaimResult(
                claim=f"(the claim check {path} raised)",
                criterion="runs to completion",
                measured={},
                passed=False,
                details="".join(traceback.format_exception(type(error), error, error.__traceback__)[-3:]),
            )
        result.seconds = time.perf_counter() - start
        result.path = path
        result.methods = tuple(methods)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results
