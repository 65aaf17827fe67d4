"""Shared pieces for the DIA tests: a tiny victim and wrong DIAs built from the shared loop."""

from __future__ import annotations

from typing import Any

import torch
from gradhub_dia import DropoutInversionHyperparameters
from gradhub_dia.inversion import GradientInversionResult, _run_attack


def wrong_dia(**wrong: Any):
    """A DIA with one deliberate defect (``optimise_masks=False`` or ``mask_sign=-1``)."""

    def attack(model, gradients, labels, input_shape, generator=None, **hparams: Any) -> GradientInversionResult:
        options = {**DropoutInversionHyperparameters().model_dump(), **hparams}
        extras = {key: options.pop(key, None) for key in ("loss_fn", "ground_truth", "true_masks", "progress")}
        return _run_attack(
            "dia", model, gradients, labels, input_shape, generator=generator, invert_dropout=True,
            **options, **extras, **wrong,
        )  # fmt: skip

    return attack


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
