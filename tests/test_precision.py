"""Values keep fp32 precision under bf16 autocast.

The torso and the heads' hidden layers run in bf16, but the output layers (values, advantages,
atom logits, quantile / expectile values, dueling sums) compute in fp32. Checked for every agent,
plain and dueling + noisy, on the online network, the bf16-stored acting copy and the bf16-stored
target, at returns of magnitude 20 and 200 (bf16 steps 0.125 and 1 there):

1. given the same features, the values equal what the fp32 network computes to fp32 precision;
2. a near-tie (0.1% apart) picks the same greedy action as the fp32 agent, where bf16 outputs
   (``network.fp32_output=False``, the plain autocast layers) get it wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from distrl_agents.agents import AGENT_NAMES, agent_class, make_agent
from distrl_agents.agents.targets import greedy_action
from distrl_agents.networks import DistributionalNetwork, NoisyLinear
from distrl_agents.networks.layers import ActionStream

AGENTS = list(AGENT_NAMES)
MAGNITUDES = [20.0, 200.0]
NETWORKS = {
    "plain": {"dueling": False, "noisy": False},
    "dueling_noisy": {"dueling": True, "noisy": True},
}
A = 3


def _hparams(name: str, magnitude: float) -> dict[str, Any]:
    """The agent's test sizes; a fixed support (``v_min``, ``v_max``) spans ``[0, 2M]``, so that
    the expected returns are of magnitude ``M`` whatever the logits."""
    hparams = dict(agent_class(name).test_sizes)
    fields = {f.name for f in dataclasses.fields(agent_class(name).Config)}
    if {"v_min", "v_max"} <= fields:
        hparams.update(v_min=0.0, v_max=2.0 * magnitude)
    return hparams


def _agent(name: str, magnitude: float, network: str, precision: str = "bf16", **net: Any) -> Any:
    return make_agent(
        name,
        num_actions=A,
        obs_shape=(4, 84, 84),
        network={"torso": "nature", "hidden": 16, **NETWORKS[network], **net},
        precision=precision,
        seed=1,
        **_hparams(name, magnitude),
    )


def _obs(n: int = 4, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 4, 84, 84), generator=g, dtype=torch.uint8)


def _output_layer(stream: nn.Sequential) -> nn.Linear | NoisyLinear:
    layer = stream[2]
    assert isinstance(layer, (nn.Linear, NoisyLinear))
    return layer


def _output_layers(net: nn.Module) -> list[nn.Linear | NoisyLinear]:
    """The last layer of each stream (advantage, and value when dueling)."""
    stream = next(m for m in net.modules() if isinstance(m, ActionStream))
    layers = [_output_layer(stream.advantage)]
    if stream.value is not None:
        layers.append(_output_layer(stream.value))
    return layers


def _shift_outputs(net: nn.Module, magnitude: float) -> None:
    """Move the network's values to about ``magnitude`` (the output bias of the value stream)."""
    layer = _output_layers(net)[-1]
    bias = layer.bias_mu if isinstance(layer, NoisyLinear) else layer.bias
    with torch.no_grad():
        bias.add_(magnitude)


def _same_features_reference(
    net: DistributionalNetwork, obs: Tensor, head_kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """(bf16 forward, fp32 forward of an fp32 copy fed the bf16 forward's torso features and
    output-layer inputs)."""
    torso_out: list[Tensor] = []
    layer_in: list[Tensor] = []
    hooks = [net.torso.register_forward_hook(lambda m, i, o: torso_out.append(o))]
    hooks += [
        layer.register_forward_pre_hook(lambda m, args: layer_in.append(args[0]))
        for layer in _output_layers(net)
    ]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        got = net(obs, **head_kwargs)
    for h in hooks:
        h.remove()
    assert torso_out[0].dtype == torch.bfloat16 and layer_in[0].dtype == torch.bfloat16

    reference = copy.deepcopy(net).float()  # bf16-stored weights widen exactly
    feeds = iter(layer_in)
    hooks = [reference.torso.register_forward_hook(lambda m, i, o: torso_out[0].float())]
    hooks += [
        layer.register_forward_pre_hook(lambda m, args: (next(feeds).float(),))
        for layer in _output_layers(reference)
    ]
    with torch.no_grad():
        want = reference(obs, **head_kwargs)
    for h in hooks:
        h.remove()
    return got, want


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("name", AGENTS)
def test_bf16_values_equal_fp32_values_given_the_same_features(
    name: str, magnitude: float, network: str
) -> None:
    agent = _agent(name, magnitude, network)
    _shift_outputs(agent.online, magnitude)
    agent.sync_target()
    obs = _obs()
    # Fixed taus for a head that samples them (IQN); the other heads ignore the keyword.
    head_kwargs = {"taus": torch.rand(obs.shape[0], 8, generator=torch.Generator().manual_seed(2))}
    for net in (agent.online, agent.acting_network(), agent.target):
        got, want = _same_features_reference(net, obs, head_kwargs)
        q_got, q_want = got.q_values(), want.q_values()
        assert got.values.dtype == torch.float32 and q_got.dtype == torch.float32
        assert q_want.abs().mean() > 0.5 * magnitude  # values of the intended magnitude
        # fp32-level: a few ulps of fp32 (bf16 rounding would be ~2^-9 = 2e-3 relative)
        tol: dict[str, Any] = {"rtol": 1e-6, "atol": 1e-6 * magnitude}
        torch.testing.assert_close(got.values, want.values, **tol)
        torch.testing.assert_close(got.probs, want.probs, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(q_got, q_want, **tol)
    for layer in _output_layers(agent.target) + _output_layers(agent.acting_network()):
        assert all(p.dtype == torch.float32 for p in layer.parameters())


def test_same_features_check_detects_bf16_outputs() -> None:
    """The check above fails for the plain autocast output layers (``fp32_output=False``)."""
    agent = _agent("qrdqn", 20.0, "plain", fp32_output=False)
    _shift_outputs(agent.online, 20.0)
    got, want = _same_features_reference(agent.online, _obs(), {})
    err = ((got.values - want.values).abs() / want.values.abs()).max().item()
    assert err > 1e-4  # bf16 outputs and weights: errors of order 2^-9 relative


# ------------------------------------------------------------------- near-ties
def _near_tie_outputs(agent: Any, magnitude: float) -> tuple[Tensor, int]:
    """Per-action outputs ``[A, K]`` of the last layer whose expected returns are 0.1% apart
    (``M (1 + [0, 1e-3, -5e-4])`` up to a common shift), and the fp32 greedy action (1).

    Chosen by the head's layout, not by the agent: a fixed support (a ``support`` buffer) gets
    logits, any other head ``K`` values per action."""
    rel = torch.tensor([0.0, 1e-3, -5e-4], dtype=torch.float64)
    head = agent.online.head
    support = getattr(head, "support", None)
    if support is not None:
        # Mass on the end atoms z_0 and z_last of a support symmetric about M (v_min = 0,
        # v_max = 2M): Q = z_0 + (z_last - z_0) q with q = 0.5 + M rel / (z_last - z_0), i.e.
        # Q = M (1 + rel); logits c +- d / 2 with d = log(q / (1 - q)), others c - 30.
        z = support.double()
        q_hi = 0.5 + magnitude * rel / (z[-1] - z[0])
        d = torch.log(q_hi / (1 - q_hi))
        out = torch.full((A, z.numel()), 10.0 - 30.0, dtype=torch.float64)
        out[:, 0] = 10.0 - d / 2
        out[:, -1] = 10.0 + d / 2
        return out, 1
    q = magnitude * (1.0 + rel)  # [A]
    # K values per action (1: DQN's value, or IQN / FQF's constant quantile function). Quantile /
    # expectile levels: a symmetric spread in multiples of bf16's step at M, so that every level
    # rounds as the centre does.
    n = _output_layers(agent.online)[0].out_features // A
    unit = 2.0 ** math.floor(math.log2(magnitude)) / 64
    spread = unit * (2 * torch.arange(n, dtype=torch.float64) - (n - 1))  # mean 0, centre 0
    return q.unsqueeze(1) + spread, 1


def _set_outputs(net: nn.Module, out_AK: Tensor, seed: int = 0) -> None:
    """Make the stream output ``out_AK`` (+ a 1e-6-scale dependence on the features)."""
    g = torch.Generator().manual_seed(seed)
    layers = _output_layers(net)
    if len(layers) == 2:  # dueling: V + A - mean_a A
        value = out_AK.mean(0)
        biases = [(out_AK - value).flatten(), value]
    else:
        biases = [out_AK.flatten()]
    w: Tensor
    b: Tensor
    with torch.no_grad():
        for layer, bias in zip(layers, biases):
            if isinstance(layer, NoisyLinear):
                layer.weight_sigma.zero_()
                layer.bias_sigma.zero_()
                w, b = layer.weight_mu, layer.bias_mu
            else:
                w, b = layer.weight, layer.bias
            w.copy_(1e-6 * torch.randn(w.shape, generator=g))
            b.copy_(bias.to(b.dtype))


@pytest.mark.parametrize("network", list(NETWORKS))
@pytest.mark.parametrize("magnitude", MAGNITUDES)
@pytest.mark.parametrize("name", AGENTS)
def test_bf16_near_tie_picks_the_fp32_greedy_action(
    name: str, magnitude: float, network: str
) -> None:
    obs = _obs(n=5, seed=3)
    actions = {}
    for label, precision, fp32_output in [
        ("fp32", "fp32", True),
        ("bf16", "bf16", True),
        ("bf16_outputs", "bf16", False),
    ]:
        agent = _agent(name, magnitude, network, precision, fp32_output=fp32_output)
        out_AK, best = _near_tie_outputs(agent, magnitude)
        _set_outputs(agent.online, out_AK)
        agent.sync_target()
        with torch.no_grad():
            q = agent.distribution(agent.online, obs).q_values()
        if label == "fp32":
            gap = (q[:, 1] - q[:, 0]).min() / q[:, 1].abs().max()
            assert 0.5e-3 < gap < 2e-3, q  # a 0.1% near-tie
        with torch.no_grad():  # the bootstrap action from the target network
            a_star = greedy_action(agent.distribution(agent.target, obs))
        actions[label] = (agent.act(obs.numpy()), a_star.numpy())
    want_act, want_next = actions["fp32"]
    assert (want_act == best).all() and (want_next == best).all()
    got_act, got_next = actions["bf16"]
    np.testing.assert_array_equal(got_act, want_act)
    np.testing.assert_array_equal(got_next, want_next)
    # bf16 outputs round the tie away (the case this guards against)
    assert not (actions["bf16_outputs"][0] == best).all()
