"""gradhub.kernels.native: compiling at first use, the fallback, and the shared kernel header."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest
import torch

from gradhub.kernels import native
from gradhub.kernels.native import KernelUnavailableWarning

PROBE = Path(__file__).with_name("csrc") / "header_probe.cpp"


@pytest.fixture(scope="module")
def probe() -> object:
    ops = native.load("test_header_probe", [PROBE], method="header-probe")
    if ops is None:
        pytest.fail(f"the probe kernel did not compile: {native.status('test_header_probe')}")
    return ops


def test_toolchain_reports_a_missing_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    ok, description = native.toolchain()
    assert not ok and "C++ compiler (/nonexistent/c++)" in description


def test_load_without_a_compiler_warns_once_and_returns_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(native, "_failed", {})
    monkeypatch.setattr(native, "_warned", set())
    with pytest.warns(KernelUnavailableWarning, match=r"my-method: the fused kernel 'no_compiler'.*nonexistent"):
        assert native.load("no_compiler", [PROBE], method="my-method") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.load("no_compiler", [PROBE], method="my-method") is None  # no retry, no second warning
    assert native.status("no_compiler").startswith("failed: ")


def test_a_quiet_load_records_the_failure_and_a_later_loud_one_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """``warn=False`` (a default the caller chose, not the user's ``fused=True``): no warning, the failure kept;
    the first ``warn=True`` call then gives the warning, once."""
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    monkeypatch.setattr(native, "_failed", {})
    monkeypatch.setattr(native, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.load("quiet_first", [PROBE], method="my-method", warn=False) is None
    assert native.status("quiet_first").startswith("failed: ")
    with pytest.warns(KernelUnavailableWarning, match=r"my-method: the fused kernel 'quiet_first'.*nonexistent"):
        assert native.load("quiet_first", [PROBE], method="my-method") is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.load("quiet_first", [PROBE], method="my-method") is None


def test_a_compile_error_falls_back_with_the_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    broken = tmp_path / "broken.cpp"
    broken.write_text('#include "gradhub_kernels.h"\nthis is not C++;\n')
    monkeypatch.setenv("GRADHUB_KERNEL_CACHE", str(tmp_path / "cache"))
    with pytest.warns(KernelUnavailableWarning, match="broken-method"):
        assert native.load("broken_source", [broken], method="broken-method") is None


def test_build_names_change_with_the_source(tmp_path: Path) -> None:
    first, second = tmp_path / "a.cpp", tmp_path / "b.cpp"
    first.write_text("// one\n")
    second.write_text("// two\n")
    assert native._build_name("k", [first]) != native._build_name("k", [second])
    assert native._build_name("k", [first]) == native._build_name("k", [first])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_exp_nonpositive_is_accurate(probe: object, dtype: torch.dtype) -> None:
    """Within 2 ulp of float64 exp over [-100, 0] (float32: Cephes' polynomial; float64: std::exp)."""
    x = torch.linspace(-100, 0, 200_001, dtype=torch.float64)
    values = x.to(dtype, copy=True)
    probe.exp_([values], 1 << 12)  # type: ignore[attr-defined]
    exact = torch.exp(x.to(dtype).double())
    relative = ((values.double() - exact).abs() / exact.clamp_min(torch.finfo(dtype).tiny)).max().item()
    ulp = torch.finfo(dtype).eps
    below = x.to(dtype) < -87
    if dtype == torch.float32:  # below -87 the kernel returns e^-87: what 1 + e^x needs, no more
        relative = ((values.double() - exact).abs() / exact)[~below].max().item() if below.any() else relative
        assert bool((values[below] <= math.exp(-87) * 1.01).all())
    assert relative <= 2 * ulp, f"max relative error {relative:.3g} = {relative / ulp:.2f} ulp"


def test_exp_nonpositive_keeps_nan(probe: object) -> None:
    values = torch.tensor([float("nan"), -1.0, 0.0])
    probe.exp_([values], 2)  # type: ignore[attr-defined]
    assert math.isnan(values[0].item()) and values[2].item() == 1.0


def test_spans_cover_every_element_once(probe: object) -> None:
    sizes = [5, 0, 17, 1]
    flat = probe.spans(sizes, 4)  # type: ignore[attr-defined]
    rows = [flat[i : i + 3] for i in range(0, len(flat), 3)]
    covered = {(tensor, index) for tensor, begin, end in rows for index in range(begin, end)}
    assert len(covered) == sum(sizes) == sum(end - begin for _, begin, end in rows)
    assert covered == {(tensor, index) for tensor, size in enumerate(sizes) for index in range(size)}
    assert all(end - begin <= 4 for _, begin, end in rows)


def test_check_list_names_the_method_and_the_tensor(probe: object) -> None:
    with pytest.raises(RuntimeError, match=r"probe: tensors\[1\] is not contiguous"):
        probe.exp_([torch.zeros(3), torch.zeros(4, 4).t()], 8)  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="probe: the fused kernel handles float32 and float64 only"):
        probe.exp_([torch.zeros(3, dtype=torch.bfloat16)], 8)  # type: ignore[attr-defined]
