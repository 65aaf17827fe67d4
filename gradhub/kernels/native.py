"""Hand-written C++ kernels, compiled at first use and cached: what ``fused=True`` runs on CPU.

A plugin keeps its kernel source (``.cpp`` files in its package) and loads it with
:func:`load`. The first call in a machine compiles it with the C++ compiler and ninja
through :func:`torch.utils.cpp_extension.load` (about 25 s on two cores); the shared
object is cached under ``$GRADHUB_KERNEL_CACHE`` (default ``~/.cache/gradhub/kernels``) and
later processes load it in milliseconds. Concurrent first calls (DDP ranks, test workers)
wait on one compile through torch's file lock.

The sources may include ``gradhub_kernels.h`` (in this package's ``csrc/``): a parallel
driver over chunks of a list of tensors (``at::parallel_for``, so the kernel runs on
torch's own intra-op threads and respects ``torch.set_num_threads``), input checks that
name the method, and an ``exp`` that the compiler vectorises.

Each build is named by a hash of its sources, the flags, the torch version and the CPU's
instruction-set flags (it is compiled with ``-march=native``), so a cache shared between
machines never hands one CPU another's binary, and changed sources never load a stale
one. Its operators are registered under that name: ``load(...).op_name(...)``.

Where no compiler or ninja is found, or the compile fails, :func:`load` returns ``None``
after one warning per kernel that says why, and the caller falls back to its
multi-tensor path. :func:`toolchain` says up front (without importing torch) whether
this machine can compile; ``gradhub info`` prints it for methods with a fused kernel.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

__all__ = ["CSRC", "KernelUnavailableWarning", "cache_dir", "load", "toolchain"]

CSRC = Path(__file__).with_name("csrc")
"""The directory holding ``gradhub_kernels.h``; added to every build's include path."""

CXX_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-std=c++17")
LD_FLAGS = ("-fopenmp",)

_lock = threading.Lock()
_loaded: dict[str, Any] = {}
_failed: dict[str, str] = {}
_warned: set[str] = set()


class KernelUnavailableWarning(RuntimeWarning):
    """A fused kernel could not be compiled or loaded; the unfused path (the multi-tensor one for optimizers) runs."""


def cache_dir() -> Path:
    """Where compiled kernels live: ``$GRADHUB_KERNEL_CACHE`` or ``~/.cache/gradhub/kernels``."""
    configured = os.environ.get("GRADHUB_KERNEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "gradhub" / "kernels"


def _ninja() -> str | None:
    """ninja on PATH, or the one the ``ninja`` package from PyPI ships."""
    found = shutil.which("ninja")
    if found is None:
        try:
            import ninja  # type: ignore[import-not-found]

            candidate = Path(ninja.BIN_DIR) / "ninja"
            found = str(candidate) if candidate.exists() else None
        except ImportError:
            pass
    return found


def toolchain() -> tuple[bool, str]:
    """Whether this machine can compile a kernel: ``(ok, description)``; imports nothing heavy."""
    compiler = os.environ.get("CXX") or "c++"
    compiler_path = shutil.which(compiler)
    ninja_path = _ninja()
    missing = [
        name for name, path in ((f"C++ compiler ({compiler})", compiler_path), ("ninja", ninja_path)) if not path
    ]
    if missing:
        return False, f"missing here: {', '.join(missing)}"
    return True, f"{compiler_path} and {ninja_path}"


def _cpu_signature() -> str:
    """The CPU's model and instruction-set flags (what ``-march=native`` compiles for)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine() + platform.processor()
    wanted = [line for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features", "model name")]
    return platform.machine() + "\n" + "\n".join(sorted(set(wanted)))


def _build_name(name: str, sources: list[Path]) -> str:
    import torch

    digest = hashlib.sha256()
    for part in (name, torch.__version__, " ".join(CXX_FLAGS), _cpu_signature()):
        digest.update(part.encode())
    for path in [*sources, CSRC / "gradhub_kernels.h"]:
        digest.update(path.read_bytes())
    return f"gradhub_{name}_{digest.hexdigest()[:12]}"


def _ops(build: str) -> Any:
    import torch

    return getattr(torch.ops, build)


def load(
    name: str,
    sources: list[Path | str],
    *,
    method: str,
    fallback: str = "the multi-tensor path",
    warn: bool = True,
) -> Any | None:
    """Compile (once per machine) and load a kernel library; ``None`` if it cannot be had.

    ``sources`` are C++ files whose operators are registered with
    ``TORCH_LIBRARY(GRADHUB_LIBRARY, m)``; the macro is defined to the build's name. The
    returned object is ``torch.ops.<build name>``, so ``load(...).my_op_(...)`` calls it.
    On failure ``method`` and the path that runs instead (``fallback``) are named in the one
    warning (category :class:`KernelUnavailableWarning`), and later calls return ``None``
    without retrying. ``warn=False`` is for a caller that chose the kernel itself (a default,
    not the user's ``fused=True``): the failure is recorded (``status``) without a warning, and
    the first later call with ``warn=True`` gives it.
    """
    paths = [Path(source) for source in sources]
    with _lock:
        if name in _loaded:
            return _loaded[name]
        if name in _failed:
            if warn and name not in _warned:
                _warn(name, _failed[name], method, fallback)
            return None
        try:
            ok, description = toolchain()
            if not ok:
                raise RuntimeError(description)
            ninja_directory = str(Path(_ninja() or "ninja").parent)
            if ninja_directory not in os.environ.get("PATH", "").split(os.pathsep):  # torch looks on PATH
                os.environ["PATH"] = ninja_directory + os.pathsep + os.environ.get("PATH", "")
            build = _build_name(name, paths)
            directory = cache_dir() / build
            directory.mkdir(parents=True, exist_ok=True)
            from torch.utils import cpp_extension

            cpp_extension.load(
                name=build,
                sources=[str(path) for path in paths],
                extra_cflags=[*CXX_FLAGS, f"-DGRADHUB_LIBRARY={build}"],
                extra_ldflags=list(LD_FLAGS),
                extra_include_paths=[str(CSRC)],
                build_directory=str(directory),
                is_python_module=False,
                verbose=False,
            )
            _loaded[name] = _ops(build)
            return _loaded[name]
        except Exception as error:  # any failure (no compiler, compile error, load error) means: fall back
            reason = " ".join(str(error).split())
            if len(reason) > 600:  # the command line first, the compiler's complaint last
                reason = f"{reason[:200]} ... {reason[-400:]}"
            _failed[name] = reason
            if warn:
                _warn(name, reason, method, fallback)
            return None


def _warn(name: str, reason: str, method: str, fallback: str) -> None:
    _warned.add(name)
    warnings.warn(
        f"{method}: the fused kernel '{name}' is unavailable ({reason}); falling back to "
        f"{fallback}. It needs a C++ compiler and ninja at first use (see `gradhub info {method}`).",
        KernelUnavailableWarning,
        stacklevel=4,
    )


def status(name: str) -> str:
    """``"loaded"``, ``"failed: <reason>"`` or ``"not loaded"`` for a kernel of this process."""
    if name in _loaded:
        return "loaded"
    if name in _failed:
        return f"failed: {_failed[name]}"
    return "not loaded"
