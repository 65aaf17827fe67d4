"""Seeded examples for the conformance suite: a small tanh MLP classifier on fixed data.

The optimizers need per-example gradients, but the suite's training loop calls only
``example.loss().backward()``. The optimizer examples' ``loss`` therefore runs the model
through torch's per-sample-gradient mode (``call_for_per_sample_grads``, ExpandedWeights;
``loss_reduction="mean"``), under which that ordinary ``backward()`` fills
``param.grad_sample = grad l_i`` on every parameter (and leaves ``.grad`` None). With
gradients disabled (the suite's loss read-outs) it is the plain forward. A core
``OptimizerExample`` that says how per-example gradients are produced would make this
unnecessary (see the README, "Core changes").
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.functional import cross_entropy
from torch.nn.utils._per_sample_grad import call_for_per_sample_grads

from gradhub.kinds.optimizer import OptimizerExample
from gradhub.kinds.probe import ProbeExample


def classification_problem(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0, examples: int = 24
) -> tuple[nn.Module, Tensor, Tensor]:
    """An 8 -> 16 -> 4 tanh MLP and ``examples`` Gaussian inputs labelled by a random linear teacher."""
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4))
    # drawn on the host and moved: the same problem on every device
    inputs = torch.randn(examples, 8, generator=generator, device="cpu")
    labels = (inputs @ torch.randn(8, 4, generator=generator, device="cpu")).argmax(1)
    return model.to(device=device, dtype=dtype), inputs.to(device=device, dtype=dtype), labels.to(device)


def _optimizer_example(device: torch.device | str, dtype: torch.dtype, seed: int, hparams: dict) -> OptimizerExample:
    model, inputs, labels = classification_problem(device, dtype, seed)

    def loss() -> Tensor:
        if not torch.is_grad_enabled():
            return cross_entropy(model(inputs), labels)
        return cross_entropy(call_for_per_sample_grads(model, loss_reduction="mean")(inputs), labels)

    return OptimizerExample(model=model, loss=loss, hparams=hparams, steps=10)


def mlp_clipping_two_per_end(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    return _optimizer_example(device, dtype, seed, {"lr": 0.5, "momentum": 0.9, "c": 2, "weight_decay": 1e-3})


def mlp_in_three_groups(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> OptimizerExample:
    return _optimizer_example(device, dtype, seed, {"lr": 0.5, "momentum": 0.9, "n_groups": 3, "weight_decay": 1e-3})


def mlp_in_chunks_of_ten(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    model, inputs, labels = classification_problem(device, dtype, seed)
    return ProbeExample(model=model, args=(cross_entropy, inputs, labels), hparams={"chunk_size": 10})


def mlp_in_chunks_of_eight(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, seed: int = 0
) -> ProbeExample:
    model, inputs, labels = classification_problem(device, dtype, seed)
    return ProbeExample(model=model, args=(cross_entropy, inputs, labels), hparams={"chunk_size": 8})
