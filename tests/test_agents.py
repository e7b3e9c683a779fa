"""Agent API: registry, acting, one learning step's bookkeeping, target sync, checkpoints."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch

from distrl_agents.agents import (
    AGENT_NAMES,
    RUN_LEVEL_HPARAMS,
    agent_class,
    agent_hparam_names,
    make_agent,
)
from distrl_agents.types import Batch, LearnResult

#: every registered agent, at its small test sizes (``Agent.test_sizes``); the contract tests
#: below run for each.
AGENTS = list(AGENT_NAMES)
SMALL = {name: dict(agent_class(name).test_sizes) for name in AGENTS}
MLP = {"torso": "mlp", "mlp_sizes": [16], "hidden": 16}
A = 3
_RNG = np.random.default_rng(0)


def _batch(obs_shape: tuple[int, ...], batch_size: int = 6, uint8: bool = False) -> Batch:
    g = torch.Generator().manual_seed(5)
    if uint8:
        obs = torch.randint(0, 256, (batch_size, *obs_shape), generator=g, dtype=torch.uint8)
        next_obs = torch.randint(0, 256, (batch_size, *obs_shape), generator=g, dtype=torch.uint8)
    else:
        obs = torch.randn(batch_size, *obs_shape, generator=g)
        next_obs = torch.randn(batch_size, *obs_shape, generator=g)
    return Batch(
        obs=obs,
        action=torch.randint(0, A, (batch_size,), generator=g),
        reward=torch.randn(batch_size, generator=g),
        discount=torch.tensor([0.99, 0.0, 0.9801, 0.99, 0.0, 0.99])[:batch_size],
        next_obs=next_obs,
        weights=torch.rand(batch_size, generator=g) + 0.5,
        indices=torch.arange(batch_size),
    )


def _atari_agent(name: str, noisy: bool = False, **kw):  # type: ignore[no-untyped-def]
    """A small agent on 4x84x84 uint8 frames (Nature torso, 16 hidden units), bf16 by default."""
    kw.setdefault("precision", "bf16")
    network = {"torso": "nature", "hidden": 16, "noisy": noisy}
    return make_agent(
        name, num_actions=A, obs_shape=(4, 84, 84), network=network, **SMALL.get(name, {}), **kw
    )


def _agent(name: str, **kw):  # type: ignore[no-untyped-def]
    network = kw.pop("network", MLP)
    hp = {**SMALL[name], "lr": 1e-3, **kw}
    return make_agent(name, num_actions=A, obs_shape=(5,), network=network, **hp)


def test_registry_names_and_errors() -> None:
    assert {"dqn", "c51", "qrdqn", "iqn", "fqf", "expectile"} <= set(AGENT_NAMES)
    with pytest.raises(ValueError, match="valid agents"):
        make_agent("rainbow", num_actions=2, obs_shape=(3,))
    with pytest.raises(ValueError, match="num_atom"):
        make_agent("c51", num_actions=2, obs_shape=(3,), num_atom=51)
    with pytest.raises(ValueError, match="v_min"):
        make_agent("c51", num_actions=2, obs_shape=(3,), network=MLP, v_min=5.0, v_max=1.0)
    with pytest.raises(ValueError, match="precision"):
        make_agent("dqn", num_actions=2, obs_shape=(3,), network=MLP, precision="fp16")
    with pytest.raises(ValueError, match="hiden"):
        make_agent("dqn", num_actions=2, obs_shape=(3,), network={"hiden": 3})
    assert "fraction_lr" in agent_hparam_names("fqf") and "double_dqn" in agent_hparam_names("fqf")
    assert "num_actions" not in agent_hparam_names("iqn")


@pytest.mark.parametrize("name", AGENTS)
def test_act_batch_uint8_frames(name: str) -> None:
    agent = make_agent(
        name,
        num_actions=18,
        obs_shape=(4, 84, 84),
        network={"torso": "nature", "hidden": 16},
        **SMALL[name],
    )
    obs = np.random.default_rng(0).integers(0, 256, (5, 4, 84, 84), dtype=np.uint8)
    obs0 = obs.copy()
    actions = agent.act(obs)
    assert actions.shape == (5,) and actions.dtype == np.int64
    assert ((actions >= 0) & (actions < 18)).all()
    assert np.array_equal(obs, obs0)
    explore = agent.act(obs, epsilon=1.0)
    assert explore.shape == (5,) and explore.dtype == np.int64
    assert agent.name == name and agent.spec["num_actions"] == 18


@pytest.mark.parametrize("name", AGENTS)
def test_action_value_fn_is_used_for_acting(name: str) -> None:
    def prefer_last(dist):  # type: ignore[no-untyped-def]
        q = dist.q_values()
        out = torch.zeros_like(q)
        out[:, -1] = 1.0
        return out

    agent = _agent(name)
    agent.action_value_fn = prefer_last
    assert (agent.act(_RNG.standard_normal((4, 5)).astype(np.float32)) == A - 1).all()


@pytest.mark.parametrize("name", AGENTS)
def test_learn_step_bookkeeping(name: str) -> None:
    agent = _agent(name)
    batch = _batch((5,))
    saved = copy.deepcopy(batch)
    target0 = {k: v.clone() for k, v in agent.target.state_dict().items()}
    online0 = {k: v.clone() for k, v in agent.online.state_dict().items()}
    result = agent.learn(batch)
    assert isinstance(result, LearnResult)
    assert result.loss.shape == (6,) and result.loss.dtype == torch.float32
    assert not result.loss.requires_grad and torch.isfinite(result.loss).all()
    for key in ("loss", "q_mean", "grad_norm"):
        assert np.isfinite(result.metrics[key])
    assert result.metrics["grad_norm"] > 0
    if name == "fqf":
        assert "fraction_entropy" in result.metrics and "fraction_loss" in result.metrics
        assert result.metrics["fraction_entropy"] > 0
    # importance-weighted mean of the per-sample loss
    expected = float((batch.weights * result.loss).mean())
    assert result.metrics["loss"] == pytest.approx(expected, rel=1e-5)
    # inputs not mutated
    for field in ("obs", "action", "reward", "discount", "next_obs", "weights", "indices"):
        assert torch.equal(getattr(batch, field), getattr(saved, field)), field
    # online moved, target frozen until sync
    changed = [k for k, v in agent.online.state_dict().items() if not torch.equal(v, online0[k])]
    assert changed
    for k, v in agent.target.state_dict().items():
        assert torch.equal(v, target0[k]), k
    assert all(not p.requires_grad for p in agent.target.parameters())
    agent.sync_target()
    for k, v in agent.target.state_dict().items():
        assert torch.equal(v, agent.online.state_dict()[k]), k


def _online_grads(agent) -> list[torch.Tensor]:  # type: ignore[no-untyped-def]
    return [p.grad.clone() for p in agent.online.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", AGENTS)
def test_loss_reduction_sum_is_batch_size_times_the_mean_gradient(name: str) -> None:
    batch = _batch((5,))  # non-uniform importance weights
    size = batch.obs.shape[0]
    results, grads = {}, {}
    for reduction in ("mean", "sum"):
        agent = _agent(name, loss_reduction=reduction)
        results[reduction] = agent.learn(batch)
        grads[reduction] = _online_grads(agent)  # the gradient the step used (FQF: both losses)
    assert len(grads["sum"]) == len(grads["mean"]) == len(list(agent.online.parameters()))
    for g_sum, g_mean in zip(grads["sum"], grads["mean"]):
        torch.testing.assert_close(g_sum, size * g_mean, rtol=1e-5, atol=1e-7)
    # same per-sample losses and the same logged (weighted mean) loss either way
    torch.testing.assert_close(results["sum"].loss, results["mean"].loss)
    assert results["sum"].metrics["loss"] == pytest.approx(results["mean"].metrics["loss"])


def test_loss_reduction_sum_is_the_weighted_sum_of_per_sample_gradients() -> None:
    # The DQN paper's Lua code back-propagates each sample's clipped TD error unscaled: the
    # gradient is sum_i w_i grad l_i. Reference: each sample's gradient on its own, summed.
    batch = _batch((5,))
    agent = _agent("dqn", loss_reduction="sum")
    reference = _agent("dqn")
    params = list(reference.online.parameters())
    want = [torch.zeros_like(p) for p in params]
    for i in range(batch.obs.shape[0]):
        one = Batch(**{f: getattr(batch, f)[i : i + 1] for f in Batch.__dataclass_fields__})
        loss_i = reference.compute_loss(one).per_sample[0]
        for acc, g in zip(want, torch.autograd.grad(loss_i, params)):
            acc += batch.weights[i] * g
    agent.learn(batch)
    for got, w in zip(_online_grads(agent), want):
        torch.testing.assert_close(got, w, rtol=1e-5, atol=1e-7)


def test_loss_reduction_is_checked() -> None:
    with pytest.raises(ValueError, match="loss_reduction"):
        _agent("dqn", loss_reduction="total")


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("variant", ["plain", "double_noisy_dueling"])
def test_all_parameters_get_finite_nonzero_gradients(name: str, variant: str) -> None:
    if variant == "plain":
        agent = _agent(name)
    else:
        network = {**MLP, "noisy": True, "dueling": True}
        agent = _agent(name, double_dqn=True, network=network)
    for opt in agent.optimizers:
        opt.zero_grad()
    out = agent.compute_loss(_batch((5,)))
    total = out.per_sample.mean() + (0 if out.aux_per_sample is None else out.aux_per_sample.mean())
    total.backward()
    for pname, p in agent.online.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, pname
    assert all(p.grad is None for p in agent.target.parameters())


@pytest.mark.parametrize("name", AGENTS)
def test_bf16_path_runs_and_losses_are_fp32(name: str) -> None:
    agent = _atari_agent(name)
    batch = _batch((4, 84, 84), uint8=True)
    out = agent.compute_loss(batch)
    assert out.per_sample.dtype == torch.float32
    result = agent.learn(batch)
    assert result.loss.dtype == torch.float32 and torch.isfinite(result.loss).all()
    assert agent.act(batch.obs.numpy()).shape == (6,)


@pytest.mark.parametrize("name", AGENTS)
def test_bf16_target_stored_in_bf16_computes_what_the_fp32_copy_computes(name: str) -> None:
    """Under bf16 the frozen target keeps its conv / linear weights in bf16 (no per-update weight
    casts); under autocast that must give bit-identical outputs to an fp32 copy of the same
    weights. The FQF fraction proposal runs in fp32 and keeps fp32 weights."""
    agent = _atari_agent(name)
    batch = _batch((4, 84, 84), uint8=True)
    agent.learn(batch)
    agent.sync_target()
    reference = copy.deepcopy(agent.online).requires_grad_(False)  # fp32 weights, same values
    dtypes = {n: p.dtype for n, p in agent.target.named_parameters()}
    assert dtypes["torso.net.0.weight"] == torch.bfloat16
    for n, p in reference.named_parameters():
        assert p.dtype == torch.float32
        q = agent.target.get_parameter(n)
        torch.testing.assert_close(q, p.to(q.dtype), rtol=0, atol=0)
    if name == "fqf":
        assert dtypes["head.fraction_proposal.linear.weight"] == torch.float32
    with torch.no_grad(), agent.autocast():
        got = agent.target(batch.next_obs, generator=torch.Generator().manual_seed(3))
        want = reference(batch.next_obs, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got.values, want.values) and torch.equal(got.probs, want.probs)


@pytest.mark.parametrize("name", AGENTS)
@pytest.mark.parametrize("noisy", [False, True])
def test_bf16_acting_copy_always_computes_what_the_online_network_computes(
    name: str, noisy: bool
) -> None:
    """Under bf16, act() runs a bf16-stored copy of the online network; it must follow every
    change of the online weights (updates, checkpoint loads, in-place edits, noise, modes)."""
    agent = _atari_agent(name, noisy)
    batch = _batch((4, 84, 84), uint8=True)

    def check() -> None:
        acting = agent.acting_network()
        assert acting is not agent.online and acting.training == agent.online.training
        state = agent.generator.get_state()  # IQN draws its taus from the agent's generator
        with torch.no_grad():
            want = agent.distribution(agent.online, batch.obs).q_values()
            agent.generator.set_state(state)
            got = agent.distribution(acting, batch.obs).q_values()
        assert torch.equal(got, want)

    check()
    for _ in range(2):
        agent.learn(batch)
        check()
    other = _atari_agent(name, noisy, precision="fp32", seed=5)
    agent.load_state_dict(other.state_dict())
    check()
    with torch.no_grad():
        next(agent.online.parameters()).mul_(1.5)
    check()
    if noisy:
        agent.online.reset_noise(torch.Generator().manual_seed(4))
        check()
    agent.eval()
    check()
    agent.train()
    check()
    fp32 = _atari_agent(name, noisy, precision="fp32")
    assert fp32.acting_network() is fp32.online  # fp32 acts through the online network itself


@pytest.mark.parametrize("name", ["c51", "fqf"])
def test_checkpoints_move_between_fp32_and_bf16(name: str) -> None:
    fp32 = _atari_agent(name, precision="fp32")
    bf16 = _atari_agent(name, seed=9)
    bf16.load_state_dict(fp32.state_dict())
    for n, p in fp32.target.named_parameters():
        q = bf16.target.get_parameter(n)
        torch.testing.assert_close(q, p.to(q.dtype), rtol=0, atol=0)
    back = _atari_agent(name, precision="fp32", seed=9)
    back.load_state_dict(bf16.state_dict())  # bf16 target weights widen exactly
    for n, p in back.target.named_parameters():
        assert p.dtype == torch.float32
        torch.testing.assert_close(p, bf16.target.get_parameter(n).float(), rtol=0, atol=0)


def test_a_loaded_agent_owns_its_adam_moments_in_its_weights_memory_layout() -> None:
    """One state loaded into two agents, one with channels-last convolutions: each continues
    the training with moments of its own (the state dict is not advanced), and the
    channels-last agent's conv weights step with their own moments (fused CPU Adam would pair
    the elements of a contiguous moment with a channels-last weight by memory position)."""
    batch = _batch((4, 84, 84), uint8=True)
    src = _atari_agent("c51", precision="fp32")
    for _ in range(3):
        src.learn(batch)
    state = copy.deepcopy(src.state_dict())
    saved_moments = {k: v["exp_avg"].clone() for k, v in state["optimizers"][0]["state"].items()}
    plain = _atari_agent("c51", precision="fp32", seed=9)
    cl = _atari_agent("c51", precision="fp32", seed=9, channels_last=True)
    for agent in (plain, cl):
        agent.load_state_dict(state)
    conv = cl.online.torso.net[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert cl.optimizers[0].state[conv]["exp_avg"].stride() == conv.stride()
    before = {n: p.detach().clone() for n, p in plain.online.named_parameters()}
    src.learn(batch)
    plain.learn(batch)
    cl.learn(batch)
    for k, v in state["optimizers"][0]["state"].items():  # nobody advanced the loaded state
        assert torch.equal(v["exp_avg"], saved_moments[k]) and float(v["step"]) == 3
    for n, p in plain.online.named_parameters():
        step = p.detach() - before[n]
        assert step.abs().max() > 0, n
        torch.testing.assert_close(
            src.online.get_parameter(n), p, rtol=0, atol=0
        )  # the same training, continued in another agent
        cl_step = cl.online.get_parameter(n).detach() - before[n]
        rel = float((cl_step - step).norm() / step.norm())
        assert rel < 1e-3, (n, rel)  # fused Adam with mismatched layouts: about 1


@pytest.mark.parametrize("clip", [None, 0.5])
def test_grad_norm_metric_is_the_global_norm_and_clips_only_when_asked(clip: float | None) -> None:
    agent = _agent("qrdqn", max_grad_norm=clip)
    batch = _batch((5,))
    probe = copy.deepcopy(agent)
    probe.online.zero_grad()
    out = probe.compute_loss(batch)
    (batch.weights * out.per_sample).mean().backward()
    grads = [p.grad.clone() for p in probe.online.parameters()]
    expected = torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])).item()
    res = agent.learn(batch)
    assert res.metrics["grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert expected > 0.5  # so that the clip below binds
    # learn() leaves the (possibly clipped) gradients it stepped with on the parameters
    used = torch.linalg.vector_norm(
        torch.cat([p.grad.flatten() for p in agent.online.parameters()])
    )
    assert used.item() == pytest.approx(expected if clip is None else clip, rel=1e-5)


@pytest.mark.parametrize("name", AGENTS)
def test_double_dqn_noisy_dueling_variants_run(name: str) -> None:
    agent = _agent(
        name,
        double_dqn=True,
        max_grad_norm=10.0,
        network={**MLP, "noisy": True, "dueling": True},
    )
    assert agent.noisy
    res = agent.learn(_batch((5,)))
    assert np.isfinite(res.metrics["loss"])
    agent.eval()
    obs = _RNG.standard_normal((3, 5)).astype(np.float32)
    # Eval mode ignores the noise: from the same generator state (a head may sample, as IQN's
    # taus, but only from the agent's generator) acting gives the same actions.
    state = agent.generator.get_state()
    first = agent.act(obs)
    agent.generator.set_state(state)
    np.testing.assert_array_equal(agent.act(obs), first)
    agent.train()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_noisy_acting_draws_fresh_noise_every_step_in_training_only(precision: str) -> None:
    # Rainbow (Hessel et al. 2018) redraws the noise for every action, not only per update.
    network = {**MLP, "noisy": True, "dueling": True}
    agent = _agent("c51", network=network, precision=precision)
    obs = _RNG.standard_normal((64, 5)).astype(np.float32)
    net = agent.acting_network()
    noise = []
    for _ in range(3):
        agent.act(obs)
        noise.append(torch.cat([b.detach().clone().float() for b in net.buffers()]))
    assert not torch.equal(noise[0], noise[1]) and not torch.equal(noise[1], noise[2])
    # Without any learning in between, acting alone changes the greedy actions somewhere.
    actions = {tuple(agent.act(obs)) for _ in range(10)}
    assert len(actions) > 1
    # Evaluation acts with the mean weights: no draw, the same actions every time.
    agent.eval()
    before = torch.cat([b.detach().clone().float() for b in agent.acting_network().buffers()])
    a0 = agent.act(obs)
    np.testing.assert_array_equal(a0, agent.act(obs))
    after = torch.cat([b.detach().clone().float() for b in agent.acting_network().buffers()])
    assert torch.equal(before, after)
    agent.train()
    # The draws come from the agent's seeded generator: a same-seed agent acts identically.
    a, b = (_agent("c51", network=network, precision=precision, seed=3) for _ in range(2))
    for _ in range(3):
        np.testing.assert_array_equal(a.act(obs), b.act(obs))
        a.learn(_batch((5,)))
        b.learn(_batch((5,)))


@pytest.mark.parametrize("name", AGENTS)
def test_state_dict_round_trip_continues_identically(name: str) -> None:
    a1 = _agent(name)
    batch = _batch((5,))
    a1.learn(batch)
    state = copy.deepcopy(a1.state_dict())
    r1 = a1.learn(batch)
    act1 = a1.act(_RNG.standard_normal((4, 5)).astype(np.float32), epsilon=0.5)
    a2 = _agent(name, seed=123)
    a2.load_state_dict(state)
    assert a2.num_updates == 1
    r2 = a2.learn(batch)
    act2 = a2.act(_RNG.standard_normal((4, 5)).astype(np.float32), epsilon=0.5)
    torch.testing.assert_close(r1.loss, r2.loss)
    assert r1.metrics == pytest.approx(r2.metrics)
    # epsilon draws continue from the restored RNG (greedy parts may differ with the obs)
    assert act1.shape == act2.shape
    with pytest.raises(ValueError, match="checkpoint is for agent"):
        _agent("dqn" if name != "dqn" else "c51").load_state_dict(state)


def test_same_seed_is_deterministic() -> None:
    results = []
    for _ in range(2):
        agent = _agent("iqn", seed=7)
        results.append(agent.learn(_batch((5,))).loss)
    torch.testing.assert_close(results[0], results[1])


def test_compile_failure_warns_and_runs_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(module, **kwargs):  # type: ignore[no-untyped-def]
        def fail(*args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(torch, "compile", broken)
    for mode in (True, "update"):
        agent = _agent("c51", compile=mode)
        with pytest.warns(UserWarning, match="running eagerly"):
            res = agent.learn(_batch((5,)))
        assert np.isfinite(res.metrics["loss"])
    with pytest.warns(UserWarning, match="CUDA graphs need a CUDA device"):
        agent = _agent("c51", compile="graphs")  # on CPU: compile=update, without graphs
    with pytest.warns(UserWarning, match="running eagerly"):
        assert np.isfinite(agent.learn(_batch((5,))).metrics["loss"])
    with pytest.raises(ValueError, match="compile"):
        _agent("c51", compile="everything")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["c51", "qrdqn", "iqn"])
def test_compiled_update_matches_eager(name: str) -> None:
    batch = _batch((5,))
    losses = []
    for mode in ("off", "update"):
        agent = _agent(name, seed=3, compile=mode)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a platform without a compiler runs eagerly
            losses.append([agent.learn(batch).loss for _ in range(3)])
    for eager, compiled in zip(*losses):
        torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_graphs_code_path_matches_eager_on_cpu() -> None:
    """compile=graphs' learn() path (reduce-overhead compile, step marking, cloned outputs) forced
    on CPU, where torch runs it without graphs: same losses as eager. On CUDA see test_cuda.py."""
    from distrl_agents.agents.runtime import MaybeCompiled

    batch = _batch((5,))
    eager = _agent("c51", seed=3)
    graphs = _agent("c51", seed=3)
    graphs._cuda_graphs = True
    graphs._loss_fn = MaybeCompiled(graphs.compute_loss, True, mode="reduce-overhead")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a platform without a compiler runs eagerly
        results = [(eager.learn(batch), graphs.learn(batch)) for _ in range(3)]
    for want, got in results:  # earlier results stay valid after later updates
        torch.testing.assert_close(got.loss, want.loss, rtol=1e-4, atol=1e-5)
        assert got.metrics == pytest.approx(want.metrics, rel=1e-4)


@pytest.mark.slow
def test_compile_flag_runs() -> None:
    agent = _agent("dqn", compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a platform without a compiler warns and runs eagerly
        res = agent.learn(_batch((5,)))
        assert np.isfinite(res.metrics["loss"])
        assert agent.act(_RNG.standard_normal((2, 5)).astype(np.float32)).shape == (2,)


@pytest.mark.parametrize("name", AGENTS)
def test_yaml_presets_are_exactly_the_hparam_dataclass(name: str) -> None:
    """The YAML preset and the agent's dataclass cannot disagree: the preset sets exactly the
    dataclass fields that are not the run's, each to the field's default."""
    from pathlib import Path

    import yaml

    from distrl_agents.agents import agent_class
    from distrl_agents.config_values import convert, field_types

    root = Path(__file__).resolve().parents[1] / "distrl_agents" / "configs"
    cfg = yaml.safe_load((root / "agent" / f"{name}.yaml").read_text())
    assert cfg.pop("name") == name
    # Precision, compile, channels-last and the seed are the training run's (trainer config).
    assert set(cfg) == set(agent_hparam_names(name)) - {"action_value_fn", *RUN_LEVEL_HPARAMS}
    defaults = agent_class(name).Config()
    # field_types (functools.cache) hashes the class with type.__hash__; mypy checks a
    # ``type[AgentConfig]`` against Hashable by the instances' __hash__, so give it as ``type``.
    config_class: type = agent_class(name).Config
    declared = field_types(config_class)
    for key, value in cfg.items():  # as its declared type: a YAML list is a tuple field's value
        assert getattr(defaults, key) == convert(value, declared[key], key), key
    assert agent_class(name).Config(**cfg) == defaults
    network = yaml.safe_load((root / "network" / "nature.yaml").read_text())
    agent = make_agent(name, num_actions=4, obs_shape=(4, 84, 84), network=network, **cfg)
    assert agent.spec["lr"] == cfg["lr"]


@pytest.mark.parametrize("scale", [1e-3, 1e3, float("nan")])
def test_clip_grad_norm_matches_torch_bit_for_bit(scale: float) -> None:
    # Below the limit the CPU path skips the multiply by 1; above it (or NaN) it scales as torch.
    from distrl_agents.agents.runtime import clip_grad_norm

    g = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 2, 4)]
    grads = [torch.randn(s, generator=g) * scale for s in shapes]
    ours, theirs = ([torch.nn.Parameter(torch.zeros(s)) for s in shapes] for _ in range(2))
    for a, b, grad in zip(ours, theirs, grads, strict=True):
        a.grad, b.grad = grad.clone(), grad.clone()
    norm = clip_grad_norm(ours, 10.0)
    expected = torch.nn.utils.clip_grad_norm_(theirs, 10.0)
    assert torch.equal(norm, expected) or (norm.isnan() and expected.isnan())
    for a, b in zip(ours, theirs, strict=True):
        assert a.grad is not None and b.grad is not None
        assert torch.equal(a.grad, b.grad) or bool(a.grad.isnan().all() and b.grad.isnan().all())
