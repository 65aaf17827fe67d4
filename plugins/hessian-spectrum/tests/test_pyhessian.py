"""Parity with PyHessian 0.1 (amirgholami/PyHessian): HVP, top eigenvalues (power iteration), trace."""

from __future__ import annotations

import copy

import pyhessian  # a test dependency (requirements-test.txt): missing, this module fails, never skips
import torch
from gradhub_hessian_spectrum.curvature import hvp
from gradhub_hessian_spectrum.spectrum import hessian_spectrum
from torch import nn


def problem():
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    return model, (
        torch.randn(30, 4, generator=generator, dtype=torch.float64),
        torch.randint(0, 3, (30,), generator=generator),
    )


def test_against_pyhessian():
    model, data = problem()
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # PyHessian draws its vectors in the default dtype
    try:
        torch.manual_seed(0)
        reference = pyhessian.hessian(copy.deepcopy(model), nn.CrossEntropyLoss(), data=data, cuda=False)
        vectors = [torch.randn_like(p) for p in reference.params]
        theirs = torch.cat(
            [h.reshape(-1) for h in pyhessian.utils.hessian_vector_product(reference.gradsH, reference.params, vectors)]
        )
        top, _ = reference.eigenvalues(maxIter=2000, tol=1e-12, top_n=2)
        samples = reference.trace(maxIter=2000, tol=1e-12)
        trace = sum(samples) / len(samples)
    finally:
        torch.set_default_dtype(default)
    ours = hvp(model, nn.functional.cross_entropy, data)(torch.cat([v.reshape(-1) for v in vectors]))
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
    spectrum = hessian_spectrum(model, nn.functional.cross_entropy, data)
    ritz = hessian_spectrum(
        model, nn.functional.cross_entropy, data, method="lanczos", k=40, generator=torch.Generator().manual_seed(0)
    )
    # PyHessian's power iteration adds 1e-6 to norms and stops on a relative change: agree to 1e-5.
    assert abs(ritz[-1].item() - top[0]) <= 1e-5 * abs(top[0])
    assert abs(spectrum[-1].item() - top[0]) <= 1e-5 * abs(top[0])
    assert abs(spectrum[-2].item() - top[1]) <= 1e-3 * abs(top[0])
    # PyHessian's Hutchinson (2000 Rademacher probes) estimates tr(H) = sum of our eigenvalues.
    assert abs(trace - spectrum.sum().item()) <= 0.05 * abs(spectrum.sum().item())
