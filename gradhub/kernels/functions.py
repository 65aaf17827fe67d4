"""Calling a custom ``torch.autograd.Function`` without ``Function.apply``'s per-call cost.

``Function.apply`` binds its arguments to ``forward``'s signature on every call (for Functions in
the ``setup_context`` style, which torch.func needs): about 10 µs, more than a cheap layer's whole
forward on a small tensor. :func:`direct_apply` returns a caller that hands the arguments to
autograd's C++ entry directly (they must be passed positionally, exactly as ``forward`` takes
them), and goes through ``Function.apply`` only where it must: under torch.func transforms
(vmap, grad, jacrev) and while torch.compile traces.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch._functorch.utils import unwrap_dead_wrappers

__all__ = ["direct_apply"]


def direct_apply(function: type[torch.autograd.Function]) -> Callable[..., Any]:
    """``function.apply`` for positional arguments, without the per-call signature binding.

    The same results, gradients, forward-mode rules and vmap rules as ``function.apply``; use it
    where the arguments are already exactly ``forward``'s positional parameters.
    """
    entry = super(torch.autograd.Function, function).apply  # autograd's C++ entry (_FunctionBase.apply)
    through_apply = function.apply

    def apply(*args: Any) -> Any:
        if torch.compiler.is_compiling() or torch._C._are_functorch_transforms_active():
            return through_apply(*args)
        return entry(*unwrap_dead_wrappers(args))

    apply.__name__ = apply.__qualname__ = f"{function.__name__}.direct_apply"
    apply.__doc__ = f"``{function.__name__}.apply`` without per-call signature binding (see gradhub.kernels.functions)."
    return apply
