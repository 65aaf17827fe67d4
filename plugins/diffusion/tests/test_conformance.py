"""The conformance suite over every method of the plugin (one pytest test per check, device and dtype)."""

import gradhub.testing

test_conformance = gradhub.testing.suite(
    "gaussian_path",
    "ddpm_eps_loss",
    "dsm_loss",
    "edm_loss",
    "flow_matching_loss",
    "ddpm_ancestral",
    "ddim",
    "euler_ode",
    "heun_edm",
    "dpmpp_2m",
    "euler_maruyama_sde",
    "fm_euler",
)
