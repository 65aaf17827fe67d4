"""Method names shipped by first-party plugins (``plugins/<slug>`` -> ``gradhub-<slug>``).

Used only to answer a lookup of a method whose plugin is not installed with the pip
command that installs it. A test keeps this table equal to the entry points declared
under ``plugins/``.
"""

FIRST_PARTY_METHODS: dict[str, str] = {
    "adamp": "adamp",
    "sgdp": "adamp",
    "any_accuracy": "anyloss",
    "any_balanced_accuracy": "anyloss",
    "any_fbeta": "anyloss",
    "any_gmean": "anyloss",
    "anyloss": "anyloss",
    "wbce_any": "anyloss",
    "biper_conv2d": "biper",
    "biper_linear": "biper",
    "biper_sign": "biper",
    "biper_sign_act": "biper",
    "dann": "dann",
    "dann_lambda": "dann",
    "dann_lr": "dann",
    "grad_reverse": "dann",
    "gradient_reversal": "dann",
    "cg": "dcdm",
    "dcdm": "dcdm",
    "dcdm_loss": "dcdm",
    "dcdm_net": "dcdm",
    "dia": "dia",
    "inverting_gradients": "dia",
    "mask_dropout": "dia",
    "ggn_decomposition": "hessian-spectrum",
    "hessian_spectrum": "hessian-spectrum",
    "loss_along_path": "hessian-spectrum",
    "spectral_density": "hessian-spectrum",
    "grad_norm_recorder": "refined-schedules",
    "linear_decay": "refined-schedules",
    "refined_schedule": "refined-schedules",
}
