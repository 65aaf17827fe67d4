"""Spawned CPU processes in one gloo group: the harness of gradhub's and plugins' multi-process tests.

Kept apart from :mod:`gradhub.testing.distributed` (the optimizers' DDP/FSDP2 checks) so that a spawned
process imports torch and this module only, not the optimizer kind (about 1 s of CPU per process).
"""

from __future__ import annotations

import datetime
import tempfile
import traceback
from pathlib import Path
from typing import Any

import torch

__all__ = ["SPAWN_SECONDS", "WORLD_SIZE", "in_processes", "join_group", "spawn"]

WORLD_SIZE = 2


def in_processes(body: Any, world_size: int = WORLD_SIZE) -> list[Any]:
    """``body(rank, world_size)`` in ``world_size`` spawned CPU processes joined in one gloo process group.

    Returns what each rank's ``body`` returned (passed through ``torch.save``/``torch.load``), in rank
    order; a rank that raises fails the call with its traceback. ``body`` must be a module-level function
    of a module the spawned processes import by name (a test folder on ``sys.path``, say). For a plugin's
    own multi-process tests, so each one does not rebuild the rendezvous and the result files.
    """
    with tempfile.TemporaryDirectory(prefix="gradhub-processes-") as directory:
        spawn(_run_rank, (body, directory, world_size), world_size)
        errors = [path.read_text() for path in sorted(Path(directory).glob("*.error"))]
        if errors:
            raise RuntimeError(f"a process failed:\n{errors[0]}")
        return [torch.load(Path(directory) / f"rank{rank}.pt", weights_only=False) for rank in range(world_size)]


SPAWN_SECONDS = 300
"""How long spawned ranks may take before they are killed and the run fails (a hung collective)."""


def spawn(function: Any, args: tuple[Any, ...], processes: int, seconds: float = SPAWN_SECONDS) -> None:
    """``torch.multiprocessing.start_processes`` (spawn) with a deadline: a rank stuck in a collective whose
    peer died is killed after ``seconds`` and the call raises, instead of waiting for ever."""
    import time

    import torch.multiprocessing as mp

    context = mp.start_processes(function, args=args, nprocs=processes, start_method="spawn", join=False)
    deadline = time.monotonic() + seconds
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
            raise TimeoutError(f"the {processes} spawned processes did not finish within {seconds:.0f} s")


def join_group(rank: int, rendezvous: Path | str, world_size: int) -> None:
    """This spawned process joins the gloo group (one thread, a file rendezvous, a 120 s timeout)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{rendezvous}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=120),
    )


def _run_rank(rank: int, body: Any, directory: str, world_size: int) -> None:
    import torch.distributed as dist

    out = Path(directory)
    join_group(rank, out / "rendezvous", world_size)
    try:
        torch.save(body(rank, world_size), out / f"rank{rank}.pt")
    except Exception:
        (out / f"rank{rank}.error").write_text(traceback.format_exc())
    finally:
        dist.barrier()
        dist.destroy_process_group()
