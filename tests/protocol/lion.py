"""A complete optimizer on gradhub's core: Lion (Chen et al., 2023, arXiv 2302.06675, Algorithm 2)."""

import torch

from gradhub.hyperparameters import Betas, Foreach, Hyperparameters, LearningRate, WeightDecay
from gradhub.kinds.optimizer import ElementwiseOptimizer, OptimizerExample, standard_problem
from gradhub.specs import MethodSpec, Paper


class LionHyperparameters(Hyperparameters):
    lr: LearningRate = 1e-4
    betas: Betas = (0.9, 0.99)
    weight_decay: WeightDecay = 0.0
    foreach: Foreach = None


def single_tensor(params, grads, exp_avgs, options):
    (beta1, beta2), lr = options.betas, options.lr
    for param, grad, exp_avg in zip(params, grads, exp_avgs):
        param.mul_(1 - lr * options.weight_decay).add_(torch.lerp(grad, exp_avg, beta1).sign_(), alpha=-lr)
        exp_avg.lerp_(grad, 1 - beta2)


def multi_tensor(params, grads, exp_avgs, options):
    (beta1, beta2), lr = options.betas, options.lr
    torch._foreach_mul_(params, 1 - lr * options.weight_decay)
    torch._foreach_add_(params, torch._foreach_sign(torch._foreach_lerp(grads, exp_avgs, beta1)), alpha=-lr)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta2)


LION = MethodSpec(
    name="lion-fixture",
    kind="optimizer",
    summary="Sign of an interpolated momentum (Algorithm 2)",
    paper=Paper(title="Symbolic Discovery of Optimization Algorithms", authors=("Xiangning Chen",), year=2023),
    target="gradhub_lion_fixture:Lion",
    example="gradhub_lion_fixture:example",
    params=LionHyperparameters,
    capabilities={"supports_foreach": True, "ddp": {"status": "supported"}},
)


class Lion(ElementwiseOptimizer):
    spec, state_names, counts_steps = LION, ("exp_avg",), False
    single_tensor, multi_tensor = staticmethod(single_tensor), staticmethod(multi_tensor)


def example(device="cpu", dtype=torch.float32, seed=0):
    model, loss = standard_problem(device, dtype, seed)
    return OptimizerExample(model=model, loss=loss, hparams={"lr": 1e-3, "weight_decay": 0.1}, steps=10)
