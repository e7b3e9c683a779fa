"""Network zoo: shapes, uint8 scaling, head properties (IQN embedding, FQF fraction order)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from distrl_agents.networks import (
    CosineEmbedding,
    ExpectedValueHead,
    FQFHead,
    FractionProposal,
    NoisyLinear,
    build_network,
    quantile_midpoints,
)
from distrl_agents.networks.torsos import DopamineCNN, same_conv, same_padding

A = 6


def _obs(shape: tuple[int, ...], batch: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)


HEAD_ARGS: dict[str, dict[str, Any]] = {
    "expected": {},
    "categorical": {"num_atoms": 11, "v_min": -5.0, "v_max": 5.0},
    "quantile": {"num_quantiles": 7},
    "implicit": {"num_quantiles": 5, "embedding_dim": 16},
    "fqf": {"num_fractions": 8, "embedding_dim": 16},
}
HEAD_N = {"expected": 1, "categorical": 11, "quantile": 7, "implicit": 5, "fqf": 8}


@pytest.mark.parametrize("head", list(HEAD_ARGS))
@pytest.mark.parametrize(
    "net",
    [
        {"torso": "nature", "hidden": 32},
        {"torso": "dopamine", "hidden": 16, "noisy": True, "dueling": True},
        {"torso": "der", "hidden": 16, "noisy": True, "dueling": True, "noisy_std": 0.1},
        {"torso": "impala", "hidden": 16, "impala_channels": [4, 8, 8], "dueling": True},
        {"torso": "mlp", "mlp_sizes": [16], "hidden": 8, "noisy": True, "dueling": True},
    ],
)
def test_every_head_on_every_torso(head: str, net: dict) -> None:
    shape = (4, 84, 84) if net["torso"] != "mlp" else (5,)
    network = build_network(net, obs_shape=shape, num_actions=A, head=head, **HEAD_ARGS[head])
    obs = _obs(shape) if net["torso"] != "mlp" else torch.randn(3, 5)
    dist = network(obs)
    n = HEAD_N[head]
    assert dist.values.shape == (3, A, n) and dist.probs.shape == (3, A, n)
    assert dist.values.dtype == torch.float32 and dist.probs.dtype == torch.float32
    torch.testing.assert_close(dist.probs.sum(-1), torch.ones(3, A))
    q = dist.q_values()
    assert q.shape == (3, A) and torch.isfinite(q).all()
    if head in ("quantile", "implicit", "fqf"):
        assert dist.taus is not None and dist.taus.shape == (3, n)
    q.sum().backward()
    grads = [p.grad for p in network.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_uint8_scaling_happens_inside_network() -> None:
    network = build_network(
        {"torso": "nature", "hidden": 8}, obs_shape=(4, 84, 84), num_actions=A, head="expected"
    )
    obs = _obs((4, 84, 84))
    obs0 = obs.clone()
    q_uint8 = network(obs).q_values()
    q_float = network(obs.float() / 255.0).q_values()
    torch.testing.assert_close(q_uint8, q_float)
    assert torch.equal(obs, obs0) and obs.dtype == torch.uint8


def test_uint8_frames_scale_to_exactly_the_out_of_place_division() -> None:
    # frames_to_float divides its converted copy in place: bit for bit ``obs.float() / 255``, the frames
    # untouched, in both memory formats.
    from distrl_agents.networks.torsos import frames_to_float

    obs = torch.arange(256, dtype=torch.uint8).repeat(2 * 4 * 84 * 84 // 256 + 1)
    obs = obs[: 2 * 4 * 84 * 84].reshape(2, 4, 84, 84)
    for frames in (obs, obs.contiguous(memory_format=torch.channels_last)):
        before = frames.clone()
        assert torch.equal(frames_to_float(frames), frames.float() / 255.0)
        assert torch.equal(frames, before)


def test_nature_feature_dim_is_3136() -> None:
    network = build_network(None, obs_shape=(4, 84, 84), num_actions=A, head="expected")
    assert network.torso.output_dim == 3136


def test_dopamine_torso_pads_same_as_tensorflow() -> None:
    # Dopamine's NatureDQNNetwork (TF padding='same', Flax's default SAME): 84 -> 21 -> 11 -> 11,
    # 64 x 11 x 11 = 7,744 features; the 21 -> 11 layer needs 3 pixels, 1 top/left and 2
    # bottom/right (TF puts the odd pixel after).
    network = build_network(
        {"torso": "dopamine"}, obs_shape=(4, 84, 84), num_actions=A, head="expected"
    )
    assert isinstance(network.torso, DopamineCNN)
    assert network.torso.output_dim == 7744
    sizes, x = [], torch.zeros(1, 4, 84, 84)
    pads = []
    for layer in network.torso.net:
        x = layer(x)
        if isinstance(layer, torch.nn.Conv2d):
            sizes.append(tuple(x.shape[1:]))
        if isinstance(layer, torch.nn.ZeroPad2d):
            pads.append(layer.padding)
    assert sizes == [(32, 21, 21), (64, 11, 11), (64, 11, 11)]
    assert pads == [(1, 2, 1, 2)]  # (left, right, top, bottom)
    convs = [m for m in network.torso.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (32, (8, 8), (4, 4), (2, 2)),
        (64, (4, 4), (2, 2), (0, 0)),
        (64, (3, 3), (1, 1), (1, 1)),
    ]
    assert network(_obs((4, 84, 84))).q_values().shape == (3, A)


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "pads"),
    [
        (84, 8, 4, (2, 2)),  # 21 outputs: 20 * 4 + 8 - 84 = 4
        (21, 4, 2, (1, 2)),  # 11 outputs: 10 * 2 + 4 - 21 = 3, odd pixel after
        (11, 3, 1, (1, 1)),
        (5, 2, 2, (0, 1)),  # 3 outputs: 2 * 2 + 2 - 5 = 1
        (8, 1, 2, (0, 0)),  # 4 outputs: 3 * 2 + 1 - 8 = -1 -> no padding
    ],
)
def test_same_padding_formula(size: int, kernel: int, stride: int, pads: tuple) -> None:
    assert same_padding(size, kernel, stride) == pads


def test_same_conv_pads_bottom_right_on_a_hand_worked_case() -> None:
    # 5x5 input 0..24, 2x2 kernel of ones, stride 2, SAME: 3x3 outputs, one zero row / column
    # after the input. Each output sums its 2x2 window, the windows of the last row / column
    # reaching into the zero padding.
    layers, out_size = same_conv(1, 1, 2, 2, (5, 5))
    assert out_size == (3, 3)
    conv = layers[-1]
    assert isinstance(conv, torch.nn.Conv2d)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        assert conv.bias is not None
        conv.bias.zero_()
        y = torch.nn.Sequential(*layers)(torch.arange(25.0).reshape(1, 1, 5, 5))
    want = torch.tensor(
        [
            [0 + 1 + 5 + 6, 2 + 3 + 7 + 8, 4 + 9],
            [10 + 11 + 15 + 16, 12 + 13 + 17 + 18, 14 + 19],
            [20 + 21, 22 + 23, 24],
        ]
    )
    torch.testing.assert_close(y[0, 0], want.float())


def test_dopamine_torso_channels_last_gives_the_same_values() -> None:
    torch.manual_seed(0)
    net = {"torso": "dopamine", "hidden": 16, "dueling": True, "noisy": True, "noisy_std": 0.1}
    network = build_network(net, obs_shape=(4, 84, 84), num_actions=A, head="expected").eval()
    obs = _obs((4, 84, 84))
    q = network(obs).q_values()
    # torch's stubs for Module.to omit ``memory_format``, which it accepts at runtime (as in
    # distrl_agents/agents/base.py).
    network = network.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    q_cl = network(obs.contiguous(memory_format=torch.channels_last)).q_values()
    torch.testing.assert_close(q_cl, q)


def test_data_efficient_rainbow_torso() -> None:
    # van Hasselt et al. 2019, Appendix table: conv 32x5x5/5, 64x5x5/5 -> 64 x 3 x 3 on 84x84.
    network = build_network(
        {"torso": "der", "hidden": 256}, obs_shape=(4, 84, 84), num_actions=A, head="expected"
    )
    convs = [m for m in network.torso.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (32, (5, 5), (5, 5)),
        (64, (5, 5), (5, 5)),
    ]
    assert network.torso.output_dim == 576
    assert network(_obs((4, 84, 84))).q_values().shape[-1] == A


def test_quantile_midpoints() -> None:
    torch.testing.assert_close(quantile_midpoints(4), torch.tensor([0.125, 0.375, 0.625, 0.875]))


def test_cosine_embedding_uses_i_from_one() -> None:
    emb = CosineEmbedding(embedding_dim=4, out_features=3)
    taus = torch.tensor([[0.0, 0.5, 1.0]])
    cos = emb.cosines(taus)  # [1, 3, 4]
    i = torch.arange(1, 5, dtype=torch.float32)
    torch.testing.assert_close(cos[0, 1], torch.cos(math.pi * i * 0.5))
    torch.testing.assert_close(cos[0, 0], torch.ones(4))  # tau = 0
    torch.testing.assert_close(cos[0, 2], torch.cos(math.pi * i))  # tau = 1: (-1)^i
    assert emb(taus).shape == (1, 3, 3) and (emb(taus) >= 0).all()  # ReLU


def test_iqn_values_depend_on_tau_and_given_taus_are_used() -> None:
    network = build_network(
        {"torso": "mlp", "hidden": 16},
        obs_shape=(3,),
        num_actions=A,
        head="implicit",
        num_quantiles=4,
    )
    obs = torch.randn(2, 3)
    taus = torch.tensor([0.1, 0.4, 0.6, 0.9])
    d1 = network(obs, taus=taus)
    d2 = network(obs, taus=taus)
    torch.testing.assert_close(d1.values, d2.values)
    torch.testing.assert_close(d1.taus, taus.expand(2, -1))
    assert not torch.allclose(d1.values[..., 0], d1.values[..., 3])
    g = torch.Generator().manual_seed(3)
    d3 = network(obs, num_quantiles=9, generator=g)
    assert d3.values.shape == (2, A, 9) and ((d3.taus > 0) & (d3.taus < 1)).all()


def test_fqf_fractions_ordered_and_midpoints() -> None:
    prop = FractionProposal(in_features=10, num_fractions=8)
    torch.nn.init.normal_(prop.linear.weight, std=2.0)  # far from uniform
    fr = prop(torch.randn(16, 10))
    assert fr.taus.shape == (16, 9) and fr.tau_hats.shape == (16, 8)
    assert torch.all(fr.taus[:, 0] == 0) and torch.all(fr.taus[:, -1] == 1)
    assert torch.all(fr.taus[:, 1:] >= fr.taus[:, :-1])  # ordered even with extreme logits
    moderate = FractionProposal(10, 8)
    torch.nn.init.normal_(moderate.linear.weight, std=0.3)
    mt = moderate(torch.randn(16, 10)).taus
    assert torch.all(mt[:, 1:] > mt[:, :-1])  # strictly ordered
    torch.testing.assert_close(fr.tau_hats, 0.5 * (fr.taus[:, 1:] + fr.taus[:, :-1]))
    assert torch.all(fr.entropy > 0) and torch.all(fr.entropy <= math.log(8) + 1e-5)
    # Initial proposal with Kuwahara's small init is close to uniform.
    fresh = FractionProposal(10, 8, init="xavier_small")(torch.randn(4, 10))
    torch.testing.assert_close(fresh.taus, torch.linspace(0, 1, 9).expand(4, -1), atol=0.02, rtol=0)


def test_fqf_probs_are_fraction_widths() -> None:
    network = build_network(
        {"torso": "mlp", "hidden": 16}, obs_shape=(3,), num_actions=A, head="fqf", num_fractions=5
    )
    dist = network(torch.randn(2, 3))
    assert isinstance(network.head, FQFHead)
    fr = network.head.propose(network.features(torch.randn(2, 3)))
    assert fr.taus.shape == (2, 6)
    assert dist.probs.shape == (2, A, 5)
    assert torch.all(dist.probs > 0)


def test_noisy_linear_noise_and_eval_mode() -> None:
    layer = NoisyLinear(5, 3)
    x = torch.randn(4, 5)
    y1 = layer(x)
    layer.reset_noise()
    y2 = layer(x)
    assert not torch.allclose(y1, y2)
    layer.eval()
    torch.testing.assert_close(
        layer(x), torch.nn.functional.linear(x, layer.weight_mu, layer.bias_mu)
    )
    torch.testing.assert_close(layer.weight_sigma, torch.full((3, 5), 0.5 / math.sqrt(5)))


def test_noisy_linear_noise_is_the_scaled_draw_bit_for_bit() -> None:
    # reset_noise draws in place: f(x) = sgn(x) sqrt(|x|) of randn(in) then randn(out) from the
    # generator, the values of the out-of-place formula.
    layer = NoisyLinear(37, 11)
    layer.reset_noise(torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    for eps, size in ((layer.eps_in, 37), (layer.eps_out, 11)):
        x = torch.randn(size, generator=g)
        assert torch.equal(eps, x.sign() * x.abs().sqrt())


def test_dueling_combines_value_and_advantage() -> None:
    network = build_network(
        {"torso": "mlp", "dueling": True, "hidden": 8},
        obs_shape=(3,),
        num_actions=A,
        head="expected",
    )
    assert isinstance(network.head, ExpectedValueHead)
    stream = network.head.stream
    assert stream.value is not None
    feats = network.features(torch.randn(2, 3))
    adv = stream.advantage(feats).view(2, A, 1)
    val = stream.value(feats).view(2, 1, 1)
    torch.testing.assert_close(stream(feats), val + adv - adv.mean(1, keepdim=True))


def test_build_network_rejects_unknown_options() -> None:
    with pytest.raises(ValueError, match="hiden"):
        build_network({"hiden": 3}, obs_shape=(3,), num_actions=2, head="expected")
    with pytest.raises(ValueError, match="torso"):
        build_network({"torso": "resnet"}, obs_shape=(3,), num_actions=2, head="expected")
    with pytest.raises(ValueError, match="nature"):
        build_network({"torso": "nature"}, obs_shape=(3,), num_actions=2, head="expected")


def test_bf16_autocast_heads_output_fp32() -> None:
    for head, kw in HEAD_ARGS.items():
        network = build_network(
            {"torso": "nature", "hidden": 16}, obs_shape=(4, 84, 84), num_actions=A, head=head, **kw
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            dist = network(_obs((4, 84, 84), 2))
        assert dist.values.dtype == torch.float32 and dist.probs.dtype == torch.float32
        assert torch.isfinite(dist.q_values()).all()


def test_uint8_frames_go_straight_to_bf16_under_autocast_with_the_same_values() -> None:
    from distrl_agents.networks.torsos import frames_to_float

    frames = torch.arange(256, dtype=torch.uint8).view(4, 8, 8)
    fp32 = frames_to_float(frames)
    assert fp32.dtype == torch.float32
    torch.testing.assert_close(fp32, frames.float() / 255.0, rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = frames_to_float(frames)
    assert bf16.dtype == torch.bfloat16
    # exactly what autocast would hand the first convolution from the fp32 frames
    assert torch.equal(bf16, fp32.to(torch.bfloat16))
    assert frames.max() == 255  # the input is untouched (the division is in place on a copy)
