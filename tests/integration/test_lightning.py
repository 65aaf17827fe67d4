"""gradhub's optimizers in Lightning 2 (``lightning.pytorch``), on the CPU.

A ``LightningModule`` whose ``configure_optimizers`` returns a gradhub optimizer and a torch LR
scheduler stepped every batch (the dict form, ``{"optimizer": ..., "lr_scheduler": {...}}``).
Lightning's automatic optimization hands the step a closure (zero_grad, forward, backward); a run is
compared bit for bit with the same steps taken by hand, and a run resumed with ``fit(ckpt_path=...)``
from a checkpoint saved mid-run with the uninterrupted run (parameters, optimizer state, param groups,
scheduler state). A self-test plants an optimizer that loses state across the checkpoint.

The checkpoint is taken where an epoch ends: Lightning resumes a plain (not resumable) ``DataLoader``
exactly only there (it warns that a mid-epoch resume restarts the loader).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import gradhub

BATCH, EXAMPLES = 4, 12
STEPS = 8
"""Steps per run: two epochs of 3 batches and two batches of the third."""
CHECKPOINT_AT = 3
"""The resumed runs start from the checkpoint saved after this many steps: the end of the first epoch."""

_generator = torch.Generator().manual_seed(1)
DATA = TensorDataset(torch.randn(EXAMPLES, 4, generator=_generator), torch.randn(EXAMPLES, 2, generator=_generator))

OPTIMIZERS = [
    ("adamp", {"lr": 2e-2, "betas": (0.8, 0.99), "weight_decay": 1e-2}),
    ("diffgrad", {"lr": 2e-2}),
    ("sgdp", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]

pytestmark = [
    # Lightning 2.6 against torch 2.13: a deprecation inside Lightning, not in what is tested here.
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated"),
    # The resumed run saves nothing, so it is given no ModelCheckpoint to restore.
    pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`, callbacks used to create the checkpoint"),
]

Compare = Callable[[nn.Module, torch.optim.Optimizer, nn.Module, torch.optim.Optimizer], list[str]]


def network(seed: int) -> nn.Sequential:
    """Linear -> LayerNorm -> Tanh -> Linear: the first weight is scale-invariant (AdamP/SGDP project it)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 2))


def halving_every_other_step(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


class Regression(pl.LightningModule):
    """Least squares on :data:`DATA`, optimised by a gradhub optimizer under :func:`halving_every_other_step`."""

    def __init__(self, optimizer_class: type[torch.optim.Optimizer], kwargs: dict[str, Any], seed: int) -> None:
        super().__init__()
        self.net = network(seed)
        self.optimizer_class, self.kwargs = optimizer_class, kwargs
        self.steps_taken = 0

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_index: int) -> torch.Tensor:
        self.steps_taken += 1
        inputs, targets = batch
        return nn.functional.mse_loss(self.net(inputs), targets)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer = self.optimizer_class(self.parameters(), **self.kwargs)
        schedule = {"scheduler": halving_every_other_step(optimizer), "interval": "step", "frequency": 1}
        return {"optimizer": optimizer, "lr_scheduler": schedule}


@pytest.fixture(autouse=True)
def _quiet_lightning() -> Iterator[None]:
    """Lightning logs what it found (no GPU, no TPU, a tip) at INFO on every Trainer: keep it to warnings."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def trainer(root: Path, **options: Any) -> pl.Trainer:
    return pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(root),
        **options,
    )


def loader() -> DataLoader:
    return DataLoader(DATA, batch_size=BATCH, shuffle=False)


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_lightning_steps_the_optimizer_as_it_steps_alone(
    name: str, kwargs: dict[str, Any], tmp_path: Path, run_differences: Compare
) -> None:
    optimizer_class = gradhub.get(name)
    module = Regression(optimizer_class, kwargs, seed=0)
    alone = copy.deepcopy(module.net)
    inputs, targets = DATA.tensors
    before = nn.functional.mse_loss(module.net(inputs), targets).item()
    fitted = trainer(tmp_path, enable_checkpointing=False)
    fitted.fit(module, loader())
    optimizer = fitted.optimizers[0]
    assert type(optimizer) is optimizer_class and module.steps_taken == STEPS

    # By hand: what Lightning's automatic optimization does (the step gets a closure that zeroes, runs, backpropagates).
    reference = optimizer_class(alone.parameters(), **kwargs)
    scheduler = halving_every_other_step(reference)
    for step in range(STEPS):
        start = step * BATCH % EXAMPLES

        def closure(start: int = start) -> torch.Tensor:
            reference.zero_grad()
            loss = nn.functional.mse_loss(alone(inputs[start : start + BATCH]), targets[start : start + BATCH])
            loss.backward()
            return loss

        reference.step(closure)
        scheduler.step()
    assert run_differences(module.net, optimizer, alone, reference) == [], f"{name} under Lightning != by hand"
    after = nn.functional.mse_loss(module.net(inputs), targets).item()
    assert after < 0.9 * before, f"{name}: loss {before:.4f} -> {after:.4f} in {STEPS} Lightning steps"


def resume_differences(
    optimizer_class: type[torch.optim.Optimizer], kwargs: dict[str, Any], root: Path, run_differences: Compare
) -> list[str]:
    """What a run resumed with ``fit(ckpt_path=...)`` disagrees on with an uninterrupted one, bit for bit.

    The uninterrupted run takes :data:`STEPS` steps and saves a checkpoint after :data:`CHECKPOINT_AT`; a
    fresh module with *other* random weights (so only the checkpoint can make them equal) resumes from it
    and must take exactly the remaining steps. The schedulers' states must agree too.
    """
    checkpoints = root / "checkpoints"
    saving = ModelCheckpoint(dirpath=checkpoints, every_n_train_steps=CHECKPOINT_AT, save_top_k=-1, filename="{step}")
    uninterrupted = Regression(optimizer_class, kwargs, seed=0)
    first = trainer(root / "uninterrupted", callbacks=[saving])
    first.fit(uninterrupted, loader())
    resumed = Regression(optimizer_class, kwargs, seed=1)
    second = trainer(root / "resumed", enable_checkpointing=False)
    second.fit(resumed, loader(), ckpt_path=str(checkpoints / f"step={CHECKPOINT_AT}.ckpt"))

    assert (uninterrupted.steps_taken, resumed.steps_taken) == (STEPS, STEPS - CHECKPOINT_AT)
    assert first.global_step == second.global_step == STEPS
    schedulers = [run.lr_scheduler_configs[0].scheduler.state_dict() for run in (first, second)]
    assert schedulers[0] == schedulers[1]
    return run_differences(uninterrupted.net, first.optimizers[0], resumed.net, second.optimizers[0])


@pytest.mark.parametrize(("name", "kwargs"), OPTIMIZERS, ids=[name for name, _ in OPTIMIZERS])
def test_fit_resumed_from_a_checkpoint_finishes_exactly_as_the_uninterrupted_run(
    name: str, kwargs: dict[str, Any], tmp_path: Path, run_differences: Compare
) -> None:
    assert resume_differences(gradhub.get(name), kwargs, tmp_path, run_differences) == []


def test_the_resume_comparison_sees_an_optimizer_that_loses_state_across_the_checkpoint(
    tmp_path: Path, run_differences: Compare
) -> None:
    class DiffGradForgettingItsPreviousGradient(gradhub.get("diffgrad")):
        """diffGrad whose ``load_state_dict`` ignores the saved ``previous_grad`` (restarts it from zeros)."""

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            super().load_state_dict(state_dict)
            for state in self.state.values():
                state["previous_grad"].zero_()

    found = resume_differences(DiffGradForgettingItsPreviousGradient, {"lr": 2e-2}, tmp_path, run_differences)
    assert any(key.startswith("parameter ") for key in found), found
    assert any(key.endswith(".exp_avg") for key in found), found
