"""Spec models: validation, defaults by kind, BibTeX."""

from __future__ import annotations

import pydantic
import pytest

from gradhub.hyperparameters import Hyperparameters, LearningRate
from gradhub.specs import CAPABILITIES, Kind, LayerCapabilities, MethodSpec, OptimizerCapabilities, Paper

PAPER = {"title": "Slowing Down the Weight Norm Increase", "authors": ["Byeongho Heo", "Sanghyuk Chun"], "year": 2021}
BASE = {"name": "adamp-x", "kind": "optimizer", "summary": "s", "paper": PAPER, "target": "a.b:C", "example": "a:f"}


def test_capabilities_default_to_the_kind() -> None:
    spec = MethodSpec.model_validate(BASE)
    assert isinstance(spec.capabilities, OptimizerCapabilities)
    layer = MethodSpec.model_validate({**BASE, "kind": "layer", "capabilities": {"gradient": "surrogate"}})
    assert isinstance(layer.capabilities, LayerCapabilities) and layer.capabilities.gradient == "surrogate"
    assert set(CAPABILITIES) == set(Kind)


def test_capabilities_of_another_kind_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="capabilities are for kind 'layer'"):
        MethodSpec.model_validate({**BASE, "capabilities": {"kind": "layer"}})


@pytest.mark.parametrize(
    "change",
    [
        {"name": "AdamP"},
        {"name": "bad name"},
        {"kind": "regularizer"},
        {"target": "module.without.attribute"},
        {"summary": "two\nlines"},
        {"devices": []},
        {"dtypes": ["int8"]},
        {"expected_failures": {"Not A Check": "why"}},
        {"aliases": ["adamp-x"]},
        {"unknown_field": 1},
    ],
)
def test_invalid_specs_are_rejected(change: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        MethodSpec.model_validate({**BASE, **change})


def test_specs_are_frozen() -> None:
    spec = MethodSpec.model_validate(BASE)
    with pytest.raises(pydantic.ValidationError):
        spec.name = "other"  # type: ignore[misc]


def test_params_dump_as_json_schema() -> None:
    class Params(Hyperparameters):
        lr: LearningRate = 0.1

    dumped = MethodSpec.model_validate({**BASE, "params": Params}).model_dump(mode="json")
    assert dumped["params"]["properties"]["lr"] == {
        "default": 0.1,
        "description": "learning rate",
        "minimum": 0,
        "title": "Lr",
        "type": "number",
    }


def test_bibtex() -> None:
    paper = Paper.model_validate({**PAPER, "venue": "ICLR 2021", "arxiv": "2006.08217"})
    assert paper.bibtex() == (
        "@inproceedings{heo2021slowing,\n"
        "  title = {{Slowing Down the Weight Norm Increase}},\n"
        "  author = {Byeongho Heo and Sanghyuk Chun},\n"
        "  year = {2021},\n"
        "  booktitle = {ICLR 2021},\n"
        "  eprint = {2006.08217},\n"
        "  archivePrefix = {arXiv}\n"
        "}"
    )
    preprint = Paper.model_validate({**PAPER, "arxiv": "2006.08217"})
    assert preprint.bibtex().startswith("@article{heo2021slowing,")
    assert "journal = {arXiv preprint arXiv:2006.08217}" in preprint.bibtex()
