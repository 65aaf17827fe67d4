"""The documentation's code is real: examples run, quoted messages are what gradhub prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import gradhub
from gradhub.specs import MethodSpec

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def test_contributing_entry_module_example_builds_a_valid_spec() -> None:
    """The entry module CONTRIBUTING.md shows is protocol 2: a module-level spec, no hook."""
    block = next(
        block for block in python_blocks(ROOT / "CONTRIBUTING.md") if "# gradhub_my_method/__init__.py" in block
    )
    assert "register_methods" not in block and "import torch" not in block
    namespace: dict[str, object] = {}
    exec(compile(block, "CONTRIBUTING.md", "exec"), namespace)
    spec = namespace["MY_METHOD"]
    assert isinstance(spec, MethodSpec) and spec.name == "my-method"
    assert spec.params.model_fields["radius"].description == "trust-region radius (Eq. 4)"


def _message(call: object) -> str:
    with pytest.raises(gradhub.GradhubError) as raised:
        call()  # type: ignore[operator]
    return str(raised.value)


def test_readme_error_examples_are_verbatim() -> None:
    params = [torch.nn.Parameter(torch.ones(2, 2))]
    AdamP, SGDP = gradhub.get("adamp"), gradhub.get("sgdp")
    actual = [
        _message(lambda: AdamP(params, betas=(0.9, 1.0))),
        _message(lambda: AdamP(params, lrr=0.1)),
        _message(lambda: SGDP(params)),
        _message(lambda: gradhub.get("adamq")),
    ]
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"## Errors.*?```text\n(.*?)```", readme, flags=re.S).group(1).splitlines()
    assert quoted == actual


def test_readme_lists_every_first_party_method() -> None:
    from gradhub._firstparty import FIRST_PARTY_METHODS

    readme = (ROOT / "README.md").read_text()
    missing = [name for name in FIRST_PARTY_METHODS if f"`{name}` (" not in readme]
    assert not missing, f"README.md's table of plugins lacks {missing}"
