"""gradhub's optimizers in the Hugging Face ``Trainer`` (transformers 5, accelerate 1), offline on the CPU.

Three ways users meet it: an optimizer they built, handed over as ``Trainer(optimizers=(optimizer,
scheduler))``; the class and its keywords, ``Trainer(optimizer_cls_and_kwargs=(AdamP, {...}))``, from
which the Trainer builds it over its own param groups (weight decay on the weights, none on biases
and LayerNorms); and ``train(resume_from_checkpoint=...)``, which reloads the optimizer's
``state_dict`` from ``optimizer.pt``. The model is a one-layer GPT-2 with 16-wide embeddings and a
32-token vocabulary, built from a config with random weights (nothing is downloaded), trained on
random token ids.

The first two are compared with the same steps taken by hand (bit for bit), so "the Trainer ran our
optimizer as it runs alone" is what is checked, not only "the loss went down". Resume is compared
with an uninterrupted run (bit for bit), and the self-tests at the end plant optimizers that lose
part of their state across the checkpoint to show that the comparison sees it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate import Accelerator
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    get_linear_schedule_with_warmup,
)

import gradhub

VOCABULARY, LENGTH, EXAMPLES, BATCH = 32, 8, 16, 4
STEPS = 6
"""Steps per run: one and a half epochs of 4 batches."""
CHECKPOINT_AT = 3
"""The resumed runs start from the checkpoint saved here, in the middle of the first epoch."""

_tokens = torch.randint(0, VOCABULARY, (EXAMPLES, LENGTH), generator=torch.Generator().manual_seed(1))
_labels = _tokens.clone()
# The first token has nothing before it to be predicted from (the loss shifts labels by one). Masking it makes
# the Trainer's token count (taken over the labels before the shift) equal to the loss's own, so the Trainer's
# loss is the model's plain mean and the hand-run reference below takes bit-identical steps.
_labels[:, 0] = -100
DATA = [{"input_ids": tokens, "labels": labels} for tokens, labels in zip(_tokens, _labels)]

RESUMED = [
    ("adamp", {"lr": 1e-2, "betas": (0.8, 0.99)}),
    ("diffgrad", {"lr": 1e-2}),
    ("sgdp", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
]
"""The optimizers (and keywords) whose state goes through a checkpoint."""

Compare = Callable[[torch.nn.Module, torch.optim.Optimizer, torch.nn.Module, torch.optim.Optimizer], list[str]]


def tiny_gpt2(seed: int) -> GPT2LMHeadModel:
    """A one-layer GPT-2 (4,080 parameters) with random weights and no dropout."""
    config = GPT2Config(
        vocab_size=VOCABULARY,
        n_positions=16,
        n_embd=16,
        n_layer=1,
        n_head=2,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2LMHeadModel(config)


def arguments(output_dir: Path, *, save_steps: int | None = None, **overrides: Any) -> TrainingArguments:
    """CPU, no reporting, no workers, seeded; a checkpoint every ``save_steps`` steps when given."""
    settings: dict[str, Any] = dict(
        output_dir=str(output_dir),
        max_steps=STEPS,
        per_device_train_batch_size=BATCH,
        use_cpu=True,
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
        logging_strategy="no",
        seed=0,
        data_seed=1,
        save_strategy="steps" if save_steps else "no",
    )
    if save_steps:
        settings["save_steps"] = save_steps
    return TrainingArguments(**{**settings, **overrides})


def unwrapped(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer itself, under accelerate's ``AcceleratedOptimizer`` wrapper when the Trainer added one."""
    return getattr(optimizer, "optimizer", optimizer)


def dataset_loss(model: torch.nn.Module) -> float:
    with torch.no_grad():
        return model(input_ids=_tokens, labels=_labels).loss.item()


def train_by_hand(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any) -> None:
    """What the Trainer does with ``train_sampling_strategy="sequential"`` and no gradient clipping."""
    model.train()
    for step in range(STEPS):
        start = step * BATCH % EXAMPLES
        model(input_ids=_tokens[start : start + BATCH], labels=_labels[start : start + BATCH]).loss.backward()
        optimizer.step()
        scheduler.step()
        model.zero_grad()


@pytest.mark.parametrize(
    ("name", "hparams"),
    [("adamp", {"lr": 1e-2, "weight_decay": 1e-2, "nesterov": True}), ("diffgrad", {"lr": 1e-2})],
    ids=["adamp", "diffgrad"],
)
def test_the_trainer_steps_an_optimizer_passed_in_as_it_steps_alone(
    name: str, hparams: dict[str, Any], tmp_path: Path, run_differences: Compare
) -> None:
    optimizer_class = gradhub.get(name)
    model = tiny_gpt2(seed=0)
    alone = copy.deepcopy(model)
    optimizer = optimizer_class(model.parameters(), **hparams)
    scheduler = get_linear_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=STEPS)
    before = dataset_loss(model)
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path, train_sampling_strategy="sequential", max_grad_norm=0.0),
        train_dataset=DATA,
        optimizers=(optimizer, scheduler),
    )
    trainer.train()

    assert unwrapped(trainer.optimizer) is optimizer
    assert all(int(state["step"]) == STEPS for state in optimizer.state.values())
    reference = optimizer_class(alone.parameters(), **hparams)
    train_by_hand(alone, reference, get_linear_schedule_with_warmup(reference, 2, STEPS))
    assert run_differences(model, optimizer, alone, reference) == [], f"{name} under the Trainer != by hand"
    after = dataset_loss(model)
    assert after < before - 0.05, f"{name}: loss {before:.4f} -> {after:.4f} in {STEPS} Trainer steps"


def test_optimizer_cls_and_kwargs_builds_the_gradhub_optimizer_with_those_kwargs(
    tmp_path: Path, run_differences: Compare
) -> None:
    AdamP = gradhub.get("adamp")
    kwargs = {"lr": 3e-3, "betas": (0.8, 0.99), "eps": 1e-6, "delta": 0.2, "wd_ratio": 0.5, "nesterov": True}
    model = tiny_gpt2(seed=0)
    alone = copy.deepcopy(model)
    trainer = Trainer(
        model=model,
        args=arguments(tmp_path, train_sampling_strategy="sequential", max_grad_norm=0.0, weight_decay=0.05),
        train_dataset=DATA,
        optimizer_cls_and_kwargs=(AdamP, dict(kwargs)),
    )
    trainer.train()

    optimizer = unwrapped(trainer.optimizer)
    assert type(optimizer) is AdamP
    names = {id(param): name for name, param in model.named_parameters()}
    decayed = set(trainer.get_decay_parameter_names(model)) & set(names.values())  # lm_head is tied to wte
    groups = [[names[id(param)] for param in group["params"]] for group in optimizer.param_groups]
    assert [set(group) for group in groups] == [decayed, set(names.values()) - decayed]
    assert decayed and all("ln_" not in name and not name.endswith("bias") for name in decayed)
    for group, weight_decay in zip(optimizer.param_groups, (0.05, 0.0)):
        assert {key: group[key] for key in kwargs} == {**kwargs, "lr": 0.0}  # the linear schedule ended at 0
        assert group["weight_decay"] == weight_decay and group["initial_lr"] == kwargs["lr"]

    # The same optimizer over the same groups, stepped by hand under the schedule the Trainer builds by default
    # (linear decay to 0, no warmup): bit for bit what the Trainer did.
    parameters = dict(alone.named_parameters())
    reference = AdamP(
        [
            {"params": [parameters[name] for name in group], "weight_decay": wd}
            for group, wd in zip(groups, (0.05, 0.0))
        ],
        **kwargs,
    )
    train_by_hand(alone, reference, get_linear_schedule_with_warmup(reference, 0, STEPS))
    assert run_differences(model, optimizer, alone, reference) == []


@pytest.mark.parametrize(("name", "kwargs"), RESUMED, ids=[name for name, _ in RESUMED])
def test_an_optimizer_prepared_by_accelerate_loads_a_saved_state(
    name: str, kwargs: dict[str, Any], snapshot: Callable[..., dict[str, Any]], differences: Callable[..., list[str]]
) -> None:
    """The Trainer's resume in one step: ``Accelerator.prepare`` wraps the optimizer (its wrapper loads the
    optimizer's own state dict once, to place it), then the checkpoint's state dict is loaded: a second load."""
    optimizer_class = gradhub.get(name)
    model = tiny_gpt2(seed=0)
    trained = optimizer_class(model.parameters(), **kwargs)
    for start in (0, BATCH):
        model(input_ids=_tokens[start : start + BATCH], labels=_labels[start : start + BATCH]).loss.backward()
        trained.step()
    saved = copy.deepcopy(trained.state_dict())
    fresh = optimizer_class(model.parameters(), **kwargs)
    Accelerator(cpu=True).prepare_optimizer(fresh).load_state_dict(saved)
    assert differences(snapshot(model, trained), snapshot(model, fresh)) == []


class StepCounter(TrainerCallback):
    """How many optimizer steps a ``train()`` call took."""

    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.steps += 1


def resume_differences(
    optimizer_class: type[torch.optim.Optimizer], kwargs: dict[str, Any], root: Path, run_differences: Compare
) -> list[str]:
    """What a Trainer resumed from a mid-run checkpoint disagrees on with an uninterrupted one, bit for bit.

    The uninterrupted run takes :data:`STEPS` steps and saves a checkpoint at :data:`CHECKPOINT_AT` (mid-epoch,
    with the Trainer's defaults that matter here: a shuffling sampler, gradient clipping at norm 1, a linear
    schedule after warmup, weight decay on the weights). A fresh Trainer, over a model with *other* random
    weights (so only the checkpoint can make them equal), resumes from it and must take exactly the
    remaining steps. Returns the parameters, state entries and param-group values that differ.
    """
    runs = []
    for run, seed, save_steps in (("uninterrupted", 0, CHECKPOINT_AT), ("resumed", 1, None)):
        counter = StepCounter()
        trainer = Trainer(
            model=tiny_gpt2(seed),
            args=arguments(root / run, save_steps=save_steps, warmup_steps=2, weight_decay=0.01),
            train_dataset=DATA,
            optimizer_cls_and_kwargs=(optimizer_class, dict(kwargs)),
            callbacks=[counter],
        )
        checkpoint = root / "uninterrupted" / f"checkpoint-{CHECKPOINT_AT}" if run == "resumed" else None
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        expected = STEPS - CHECKPOINT_AT if checkpoint else STEPS
        assert counter.steps == expected and trainer.state.global_step == STEPS, f"{run} run: {counter.steps} steps"
        runs.append((trainer.model, unwrapped(trainer.optimizer)))
    (model, optimizer), (resumed_model, resumed_optimizer) = runs
    assert type(optimizer) is optimizer_class and type(resumed_optimizer) is optimizer_class
    return run_differences(model, optimizer, resumed_model, resumed_optimizer)


@pytest.mark.parametrize(("name", "kwargs"), RESUMED, ids=[name for name, _ in RESUMED])
def test_resuming_from_a_checkpoint_finishes_exactly_as_the_uninterrupted_run(
    name: str, kwargs: dict[str, Any], tmp_path: Path, run_differences: Compare
) -> None:
    assert resume_differences(gradhub.get(name), kwargs, tmp_path, run_differences) == []


# Self-tests: the resume comparison above must see an optimizer that does not survive a checkpoint.


def adamp_losing_its_second_moment_on_load() -> type[torch.optim.Optimizer]:
    """AdamP whose ``load_state_dict`` ignores the saved ``exp_avg_sq`` (restarts it from zeros)."""

    class AdamPLosingExpAvgSq(gradhub.get("adamp")):
        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            super().load_state_dict(state_dict)
            for state in self.state.values():
                state["exp_avg_sq"].zero_()

    return AdamPLosingExpAvgSq


def adamp_saving_its_second_moment_in_bfloat16() -> type[torch.optim.Optimizer]:
    """AdamP whose ``state_dict`` rounds ``exp_avg_sq`` to bfloat16 (and back): close, but not the same bits."""

    class AdamPRoundingExpAvgSq(gradhub.get("adamp")):
        def state_dict(self) -> dict[str, Any]:
            saved = super().state_dict()
            saved["state"] = {
                index: {**state, "exp_avg_sq": state["exp_avg_sq"].to(torch.bfloat16).float()}
                for index, state in saved["state"].items()
            }
            return saved

    return AdamPRoundingExpAvgSq


@pytest.mark.parametrize("broken", [adamp_losing_its_second_moment_on_load, adamp_saving_its_second_moment_in_bfloat16])
def test_the_resume_comparison_sees_an_optimizer_that_loses_state_across_the_checkpoint(
    broken: Callable[[], type[torch.optim.Optimizer]], tmp_path: Path, run_differences: Compare
) -> None:
    found = resume_differences(broken(), dict(RESUMED[0][1]), tmp_path, run_differences)
    assert any(key.startswith("parameter ") for key in found), found
    assert any(key.endswith(".exp_avg_sq") for key in found), found
