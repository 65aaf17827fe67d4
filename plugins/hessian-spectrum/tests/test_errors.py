"""Bad inputs raise gradhub errors that name the method, the parameter and what is allowed."""

from __future__ import annotations

import pytest
import torch
from gradhub_hessian_spectrum.curvature import hvp
from gradhub_hessian_spectrum.path import loss_along_path
from gradhub_hessian_spectrum.spectrum import ggn_decomposition, hessian_spectrum, outlier_count, spectral_density
from torch import nn

import gradhub


def problem():
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    return model, (torch.randn(8, 3), torch.randint(0, 2, (8,)))


def test_dense_too_large_names_parameter_count_and_lanczos():
    model, data = problem()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"hessian_spectrum.*26 parameters.*method='lanczos'"):
        hessian_spectrum(model, nn.functional.cross_entropy, data, dense_limit=10)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"ggn_decomposition.*26 parameters"):
        ggn_decomposition(model, nn.functional.cross_entropy, data, dense_limit=10)


def test_k_out_of_range():
    model, data = problem()
    with pytest.raises(
        gradhub.HyperparameterError, match=r"hessian_spectrum: invalid k=27.*<= the number of parameters probed \(26\)"
    ):
        hessian_spectrum(model, nn.functional.cross_entropy, data, method="lanczos", k=27)
    with pytest.raises(gradhub.HyperparameterError, match=r"hessian_spectrum: invalid k=0"):
        hessian_spectrum(model, nn.functional.cross_entropy, data, method="lanczos", k=0)
    with pytest.raises(gradhub.HyperparameterError, match=r"spectral_density: invalid m=100"):
        spectral_density(model, nn.functional.cross_entropy, data, m=100)
    with pytest.raises(gradhub.HyperparameterError, match=r"method='qr'"):
        hessian_spectrum(model, nn.functional.cross_entropy, data, method="qr")


def test_mismatched_devices():
    model, (inputs, targets) = problem()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"hessian_spectrum: unsupported devices: .*inputs on meta"):
        hessian_spectrum(model, nn.functional.cross_entropy, (inputs.to("meta"), targets))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"devices: .*targets on meta"):
        hvp(model, nn.functional.cross_entropy, (inputs, targets.to("meta")))
    state = model.state_dict()
    moved = {k: v.to("meta") for k, v in state.items()}
    with pytest.raises(gradhub.UnsupportedInputError, match=r"loss_along_path.*state_b.*device"):
        loss_along_path(model, state, moved, nn.functional.cross_entropy, (inputs, targets))


def test_non_floating_data_and_bad_shapes():
    model, (inputs, targets) = problem()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"hessian_spectrum: unsupported inputs dtype: torch.int64"):
        hessian_spectrum(model, nn.functional.cross_entropy, (inputs.long(), targets))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"inputs dtype: torch.float64.*torch.float32"):
        hessian_spectrum(model, nn.functional.cross_entropy, (inputs.double(), targets))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"data shapes"):
        hessian_spectrum(model, nn.functional.cross_entropy, (inputs, targets[:3]))
    with pytest.raises(gradhub.UnsupportedInputError, match=r"data must be a pair"):
        hessian_spectrum(model, nn.functional.cross_entropy, inputs)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"length 26"):
        hvp(model, nn.functional.cross_entropy, (inputs, targets))(torch.zeros(5))


def test_path_state_mismatch_and_outlier_count_errors():
    model, data = problem()
    state = model.state_dict()
    with pytest.raises(gradhub.UnsupportedInputError, match=r"state_b keys.*missing \['2.bias'\]"):
        loss_along_path(
            model, state, {k: v for k, v in state.items() if k != "2.bias"}, nn.functional.cross_entropy, data
        )
    with pytest.raises(gradhub.HyperparameterError, match=r"loss_along_path: invalid n_points=1"):
        loss_along_path(model, state, state, nn.functional.cross_entropy, data, n_points=1)
    with pytest.raises(gradhub.HyperparameterError, match=r"outlier_count: invalid method='median'"):
        outlier_count(torch.ones(4), method="median")
    with pytest.raises(gradhub.HyperparameterError, match=r"max_outliers=9"):
        outlier_count(torch.ones(4), max_outliers=9)
    with pytest.raises(gradhub.UnsupportedInputError, match=r"outlier_count: unsupported eigenvalues"):
        outlier_count(torch.ones(2, 2))
