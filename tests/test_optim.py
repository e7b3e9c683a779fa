"""TFRMSprop: epsilon inside the square root, checked against the formula worked by hand."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import torch

from distrl_agents.agents import make_agent
from distrl_agents.agents.optim import TFRMSprop


def _steps(opt_kwargs: dict, grads: list[float], w0: float = 1.0) -> list[float]:
    """Run the optimiser on one scalar weight whose gradient is ``grads[t]`` at step ``t``."""
    w = torch.nn.Parameter(torch.tensor([w0], dtype=torch.float64))
    opt = TFRMSprop([w], **opt_kwargs)
    out = []
    for g in grads:
        opt.zero_grad()
        w.grad = torch.tensor([g], dtype=torch.float64)
        opt.step()
        out.append(float(w.item()))
    return out


def test_centred_three_steps_match_hand_computation_dopamine_settings() -> None:
    # Dopamine dqn.gin: lr 2.5e-4, decay 0.95, eps 1e-5, centred, TF1 mean square starts at 1.
    lr, rho, eps = 2.5e-4, 0.95, 1e-5
    grads = [0.01, -0.02, 0.003]
    # By hand, step 1: ms = 0.95 * 1 + 0.05 * 1e-4 = 0.950005; mg = 0.05 * 0.01 = 5e-4;
    # ms - mg^2 + eps = 0.950005 - 2.5e-7 + 1e-5 = 0.95001475; w = 1 - 2.5e-4 * 0.01 / sqrt(.)
    w1 = 1.0 - 2.5e-4 * 0.01 / math.sqrt(0.95001475)
    # step 2: ms = 0.95 * 0.950005 + 0.05 * 4e-4 = 0.90252475; mg = 0.95 * 5e-4 - 0.05 * 0.02
    # = -5.25e-4; denom = 0.90252475 - 2.75625e-7 + 1e-5 = 0.902534474375
    w2 = w1 + 2.5e-4 * 0.02 / math.sqrt(0.902534474375)
    # step 3: ms = 0.95 * 0.90252475 + 0.05 * 9e-6 = 0.8573989625; mg = 0.95 * -5.25e-4
    # + 0.05 * 0.003 = -3.4875e-4; denom = 0.8573989625 - 1.21626...e-7 + 1e-5
    ms3, mg3 = 0.8573989625, -3.4875e-4
    w3 = w2 - 2.5e-4 * 0.003 / math.sqrt(ms3 - mg3**2 + 1e-5)
    got = _steps({"lr": lr, "alpha": rho, "eps": eps, "centered": True}, grads)
    assert got == pytest.approx([w1, w2, w3], rel=0, abs=1e-15)


def test_dqn_paper_settings_mean_square_from_zero() -> None:
    # DQN paper's RMSProp (Lua code): g, g2 start at 0; step = lr * g / sqrt(g2 - g^2 + 0.01).
    lr, g = 2.5e-4, 0.5
    # step 1: g2 = 0.05 * 0.25 = 0.0125; gm = 0.025; denom = 0.0125 - 0.000625 + 0.01 = 0.021875
    w1 = 1.0 - lr * g / math.sqrt(0.021875)
    # step 2 (same gradient): g2 = 0.95 * 0.0125 + 0.0125 = 0.024375; gm = 0.04875;
    # denom = 0.024375 - 0.0023765625 + 0.01 = 0.0319984375
    w2 = w1 - lr * g / math.sqrt(0.0319984375)
    kw = {"lr": lr, "alpha": 0.95, "eps": 0.01, "centered": True, "initial_mean_square": 0.0}
    assert _steps(kw, [g, g]) == pytest.approx([w1, w2], rel=0, abs=1e-15)


def test_uncentred_with_momentum() -> None:
    lr, rho, eps, mu = 0.1, 0.9, 1e-3, 0.5
    # step 1: ms = 0.9 + 0.1 * 4 = 1.3; mom = 0.1 * 2 / sqrt(1.301); w = 1 - mom
    m1 = 0.1 * 2.0 / math.sqrt(1.301)
    # step 2, g = 1: ms = 1.17 + 0.1 = 1.27; mom = 0.5 * m1 + 0.1 / sqrt(1.271)
    m2 = mu * m1 + 0.1 * 1.0 / math.sqrt(1.271)
    got = _steps({"lr": lr, "alpha": rho, "eps": eps, "momentum": mu}, [2.0, 1.0])
    assert got == pytest.approx([1 - m1, 1 - m1 - m2], rel=0, abs=1e-15)


def test_small_gradients_take_tf_sized_steps_not_torch_sized() -> None:
    # A steady gradient of 1e-4: torch's RMSprop (eps outside) moves ~lr per step, TF's ~lr *
    # 1e-4 / sqrt(1e-5) -- the ~30x (and, at smaller gradients, ~300x) gap the optimiser exists for.
    lr = 2.5e-4
    w_tf = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    w_pt = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    tf = TFRMSprop([w_tf], lr=lr, alpha=0.95, eps=1e-5, centered=True, initial_mean_square=0.0)
    pt = torch.optim.RMSprop([w_pt], lr=lr, alpha=0.95, eps=1e-5, centered=True)
    for _ in range(200):
        for w, opt in ((w_tf, tf), (w_pt, pt)):
            opt.zero_grad()
            w.grad = torch.full_like(w, 1e-4)
            opt.step()
    assert abs(w_pt.item()) > 20 * abs(w_tf.item()) > 0


def test_state_dict_round_trip_and_bad_values() -> None:
    w = torch.nn.Parameter(torch.ones(3))
    opt = TFRMSprop([w], lr=0.01, centered=True, momentum=0.9)
    for g in (0.1, -0.3):
        w.grad = torch.full_like(w, g)
        opt.step()
    w2 = torch.nn.Parameter(w.detach().clone())
    opt2 = TFRMSprop([w2], lr=0.01, centered=True, momentum=0.9)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))  # as a checkpoint file
    for o, p in ((opt, w), (opt2, w2)):
        p.grad = torch.full_like(p, 0.2)
        o.step()
    assert torch.equal(w, w2)
    bad_settings: list[dict[str, Any]] = [
        {"lr": 0.0},
        {"lr": 0.1, "alpha": 1.0},
        {"lr": 0.1, "eps": 0.0},
    ]
    for bad in bad_settings:
        with pytest.raises(ValueError):
            TFRMSprop([torch.nn.Parameter(torch.ones(1))], **bad)


def test_agents_build_tf_rmsprop_from_their_hparams() -> None:
    agent = make_agent(
        "dqn",
        num_actions=3,
        obs_shape=(5,),
        network={"torso": "mlp", "mlp_sizes": [8]},
        optimizer="rmsprop_tf",
        optimizer_eps=0.01,
        rmsprop_alpha=0.95,
        rmsprop_centered=True,
        rmsprop_initial_ms=0.0,
    )
    (opt,) = agent.optimizers
    assert isinstance(opt, TFRMSprop)
    group = opt.param_groups[0]
    assert (group["eps"], group["alpha"], group["centered"], group["initial_mean_square"]) == (
        0.01,
        0.95,
        True,
        0.0,
    )
    assert agent.spec["rmsprop_initial_ms"] == 0.0
    # DQN's own default is Dopamine's TF-style optimiser.
    default = make_agent("dqn", num_actions=3, obs_shape=(5,), network={"torso": "mlp"})
    assert isinstance(default.optimizers[0], TFRMSprop)
