"""What bf16 autocast changes in one learning update, quantity by quantity, against fp32.

    python scripts/bf16_update_diff.py [--agents c51 qrdqn iqn fqf] [--settings atari100k 200m]
                                       [--game breakout] [--batches 8] [--updates 200]
                                       [--threads 2] [--json OUT]

For each agent at each setting (``atari100k``: ``experiment=atari100k``, the data-efficient
Rainbow network with noisy dueling streams, n = 20, prioritized replay; ``200m``: the agent's
paper preset, ``experiment=<agent>_paper``, the Nature network) it builds the agent twice from
the same seed, once with ``precision=fp32`` and once with ``precision=bf16`` (as a run builds
them: bf16 target copy, channels-last), gives both the same weights, and compares on the same
replay batches, with the same noise and the same sampled fractions:

- noisy layers: the size of the noise term ``sigma * eps`` against ``mu``, and of bf16's
  rounding of the noisy weight ``mu + sigma * eps`` against the noise term;
- the online distribution at ``x`` and the target distribution at ``x'``: values, probabilities
  (C51) and log-probabilities, Q-values and the greedy action (acting's argmax);
- the bootstrap action ``a*`` on the target side (double Q where the preset has it): how often
  bf16 picks another action than fp32, and the fp32 Q-gap of the actions it picked instead;
- the Bellman target (C51: the projected target), the loss, the per-sample losses (the TD errors
  that prioritized replay writes to its sum tree as priorities);
- the gradient of each parameter group: cosine to the fp32 gradient and the ratio of norms.

The batches come from the game itself: a random policy fills a replay buffer with the setting's
n-step returns and sampling, and before measuring, the fp32 agent learns ``--updates`` updates
from it so that the weights are not at their initialisation (where every Q-value is a near tie).
Prints one markdown table per setting; ``--json`` also writes every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from distrl_agents.agents import make_agent
from distrl_agents.types import Batch

AGENTS = ("c51", "qrdqn", "iqn", "fqf")
SETTINGS = ("atari100k", "200m")
#: the target-side functions whose outputs are recorded (the agent module's own names)
CAPTURED = ("greedy_action", "bellman_target", "categorical_projection")


# ------------------------------------------------------------------------------ building
def run_config(agent: str, setting: str) -> Any:
    """The ``RunConfig`` of ``distrl-train experiment=... agent=...`` for a setting."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from distrl_agents.training.config import RunConfig

    experiment = "atari100k" if setting == "atari100k" else f"{agent}_paper"
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment={experiment}", f"agent={agent}"])
    raw = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(raw, dict)
    raw.pop("resume", None)
    return RunConfig.from_dict(raw)  # type: ignore[arg-type]


def make_pair(
    cfg: Any, *, num_actions: int, obs_shape: tuple[int, ...] = (4, 84, 84)
) -> dict[str, Any]:
    """The run's agent in fp32 and in bf16 (channels-last, as ``channels_last=auto`` makes a
    bf16 run), from the same seed: the same initial weights."""
    from distrl_agents.training.agent_factory import agent_hparams

    hparams = agent_hparams(cfg)
    conv = cfg.network.get("torso", "nature") != "mlp"
    return {
        p: make_agent(
            cfg.agent_name,
            num_actions=num_actions,
            obs_shape=obs_shape,
            network=dict(cfg.network),
            **hparams,
            precision=p,
            act_precision=p,
            channels_last=conv and p == "bf16",
            compile="off",
            seed=cfg.seed,
        )
        for p in ("fp32", "bf16")
    }


def copy_weights(src: Any, dst: Any) -> None:
    """``dst``'s online and target networks take ``src``'s weights (converted on copy)."""
    dst.online.load_state_dict(src.online.state_dict())
    dst.target.load_state_dict(src.target.state_dict())
    dst.weights_changed()


def fill_replay(cfg: Any, game: str, steps: int, seed: int = 0) -> Any:
    """A replay buffer of ``steps`` random-policy transitions of ``game`` with the setting's
    protocol, n-step returns, discount and prioritization."""
    from distrl_agents.envs import make_atari_env
    from distrl_agents.replay import ReplayBuffer

    env = make_atari_env(game, protocol=cfg.env.protocol, num_envs=1, seed=seed)
    obs, _ = env.reset(seed=seed)
    r, t = cfg.replay, cfg.trainer
    replay = ReplayBuffer(
        max(steps + 10, 1000),
        num_envs=1,
        frame_shape=obs.shape[2:],
        stack_size=obs.shape[1],
        n_step=r.n_step,
        gamma=t.gamma,
        prioritized=r.prioritized,
        alpha=r.alpha,
        beta=r.beta,
        beta_steps=steps,
        priority_eps=r.priority_eps,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, env.num_actions, 1)
        next_obs, _, terminated, truncated, info = env.step(actions)
        valid = ~info["autoreset"]
        replay.add(obs, actions, info["clipped_reward"], terminated, truncated, valid=valid)
        obs = next_obs
    env.close()
    return replay


def random_batch(num_actions: int, batch_size: int = 32, seed: int = 0) -> Batch:
    """A replay-shaped batch of smooth random uint8 frames (tests: no game needed): 84x84
    upsampled 21x21 noise, so that convolutions see structure, not white noise."""
    g = torch.Generator().manual_seed(seed)

    def frames() -> torch.Tensor:
        coarse = torch.rand(batch_size, 4, 21, 21, generator=g)
        fine = F.interpolate(coarse, size=(84, 84), mode="bilinear", align_corners=False)
        return (fine * 255).round().to(torch.uint8)

    return Batch(
        obs=frames(),
        action=torch.randint(0, num_actions, (batch_size,), generator=g),
        reward=torch.randint(-1, 2, (batch_size,), generator=g).float(),
        discount=torch.full((batch_size,), 0.99**3),
        next_obs=frames(),
        weights=torch.rand(batch_size, generator=g) * 0.5 + 0.5,
        indices=torch.arange(batch_size),
    )


# ------------------------------------------------------------------------------ measuring
@contextlib.contextmanager
def capturing(agent: Any) -> Iterator[dict[str, list[Any]]]:
    """Record what the agent module's target-side functions return (and, for
    ``greedy_action``, the selector's Q-values) while the block runs."""
    module = sys.modules[type(agent).__module__]
    record: dict[str, list[Any]] = defaultdict(list)
    originals = {n: getattr(module, n) for n in CAPTURED if hasattr(module, n)}

    def wrap(name: str, fn: Any) -> Any:
        def inner(*args: Any, **kwargs: Any) -> Any:
            out = fn(*args, **kwargs)
            record[name].append(out.detach().float().clone())
            if name == "greedy_action":
                record["selector_q"].append(args[0].q_values().detach().float().clone())
            return out

        return inner

    for name, fn in originals.items():
        setattr(module, name, wrap(name, fn))
    try:
        yield record
    finally:
        for name, fn in originals.items():
            setattr(module, name, fn)


def param_group(name: str, stream_last: dict[str, int]) -> str:
    """The gradient group of an online parameter: torso, embedding (IQN / FQF cosines),
    fraction proposal (FQF), the streams' hidden and output layers, noisy sigmas apart."""
    if name.startswith("torso."):
        return "torso"
    if name.startswith("head.fraction_proposal."):
        return "fractions"
    if name.startswith("head.embedding."):
        return "embedding"
    parts = name.split(".")
    if parts[:2] == ["head", "stream"] and len(parts) >= 5:
        stream, index = parts[2], int(parts[3])
        kind = "output" if index == stream_last[stream] else "hidden"
        return kind + (" sigma" if "sigma" in parts[-1] else "")
    return "other"


def _stream_last(agent: Any) -> dict[str, int]:
    last: dict[str, int] = {}
    for name, _ in agent.online.named_parameters():
        parts = name.split(".")
        if parts[:2] == ["head", "stream"] and len(parts) >= 5:
            last[parts[2]] = max(last.get(parts[2], -1), int(parts[3]))
    return last


def _noise_state(agent: Any, state: torch.Tensor) -> None:
    """Same generator state and, for noisy networks, the same noise in online and target."""
    agent.generator.set_state(state)
    agent.online.train(True)
    agent.target.train(True)
    if agent.noisy:
        agent.online.reset_noise(agent.generator)
        agent.target.reset_noise(agent.generator)


def _update(agent: Any, batch: Batch, state: torch.Tensor) -> dict[str, Any]:
    """One update's loss computation and backward pass, without the optimiser step (as
    ``Agent.learn`` computes it); what it computed, and each parameter's gradient."""
    _noise_state(agent, state)
    with capturing(agent) as record:
        out = agent.compute_loss(batch)
    weights = batch.weights.float()
    per_sample = out.per_sample.float()
    total = (weights * per_sample).mean()
    if out.aux_per_sample is not None:
        total = total + (weights * out.aux_per_sample.float()).mean()
    for p in agent.online.parameters():
        p.grad = None
    total.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in agent.online.named_parameters()
             if p.grad is not None}  # fmt: skip
    return {"per_sample": per_sample.detach(), "loss": total.detach(), "grads": grads, **record}


@torch.no_grad()
def _forward(agent: Any, net_name: str, obs: torch.Tensor, state: torch.Tensor) -> Any:
    _noise_state(agent, state)
    net = agent.online if net_name == "online" else agent.target
    return agent.distribution(net, obs)


def _flip_gap(q32: torch.Tensor, chosen: torch.Tensor) -> float:
    """The largest fp32 Q-value lost by choosing ``chosen`` instead of fp32's argmax, as a
    fraction of the row's Q-value spread (0: no flip, or flips between exact ties)."""
    best = q32.max(1).values
    got = q32.gather(1, chosen.long().view(-1, 1)).squeeze(1)
    spread = (best - q32.min(1).values).clamp_min(1e-12)
    return float(((best - got) / spread).max())


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|a - b| / |b|`` in the L2 norm (``b`` the fp32 reference)."""
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b).clamp_min(1e-30))


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@torch.no_grad()
def noisy_layer_sizes(agent: Any) -> dict[str, float]:
    """For the noisy layers under the current noise: ``|sigma * eps| / |mu|`` and bf16's
    rounding of ``mu + sigma * eps`` against ``|sigma * eps|`` (L2 norms over all weights)."""
    from distrl_agents.networks.layers import NoisyLinear

    noise2 = mu2 = round2 = 0.0
    for m in agent.online.modules():
        if isinstance(m, NoisyLinear) and not m.runs_in_fp32:
            noise = m.weight_sigma * torch.outer(m.eps_out, m.eps_in)
            w = m.weight_mu + noise
            noise2 += float(noise.square().sum())
            mu2 += float(m.weight_mu.square().sum())
            round2 += float((w.bfloat16().float() - w).square().sum())
    if not mu2:
        return {}
    return {
        "noise / mu": math.sqrt(noise2 / mu2),
        "bf16 rounding / noise": math.sqrt(round2 / noise2),
    }


def compare_update(pair: dict[str, Any], batch: Batch, seed: int = 0) -> dict[str, Any]:
    """Every quantity of one update in fp32 and bf16 on ``batch`` (the same weights, noise and
    sampled fractions); relative differences are L2 norms over the batch (``_rel``)."""
    f32, b16 = pair["fp32"], pair["bf16"]
    state = torch.Generator().manual_seed(seed).get_state()
    out: dict[str, Any] = {}
    _noise_state(f32, state)
    out.update(noisy_layer_sizes(f32))
    for net_name, obs in (("online", batch.obs), ("target", batch.next_obs)):
        d32, d16 = _forward(f32, net_name, obs, state), _forward(b16, net_name, obs, state)
        if d32.probs is not None and d32.values.shape[-1] > 1 and d32.taus is None:
            out[f"{net_name} probs"] = _rel(d16.probs.float(), d32.probs.float())
            lp32 = d32.probs.float().clamp_min(1e-30).log()
            lp16 = d16.probs.float().clamp_min(1e-30).log()
            out[f"{net_name} log-probs max abs"] = float((lp16 - lp32).abs().max())
        else:
            out[f"{net_name} values"] = _rel(d16.values.float(), d32.values.float())
        if d32.taus is not None and f32.name == "fqf":
            out[f"{net_name} fractions max abs"] = float((d16.taus - d32.taus).abs().max())
        q32, q16 = d32.q_values().float(), d16.q_values().float()
        out[f"{net_name} Q"] = _rel(q16, q32)
        out[f"{net_name} argmax flips"] = float((q16.argmax(-1) != q32.argmax(-1)).float().mean())
        out[f"{net_name} argmax flip gap / Q spread"] = _flip_gap(q32, q16.argmax(-1))
    u32, u16 = _update(f32, batch, state), _update(b16, batch, state)
    a32, a16 = u32["greedy_action"][-1].long(), u16["greedy_action"][-1].long()
    flipped = a16 != a32
    out["a* flips"] = float(flipped.float().mean())
    # fp32 Q-values of the selector (the fp32 agent's): how far from a tie the flips were
    out["a* flip gap / Q spread"] = _flip_gap(u32["selector_q"][-1], a16)
    out["flips"] = int(flipped.sum())
    out["rows"] = int(flipped.numel())
    key = "categorical_projection" if "categorical_projection" in u32 else "bellman_target"
    out["target"] = _rel(u16[key][-1], u32[key][-1])
    out["loss"] = abs(float(u16["loss"]) / float(u32["loss"]) - 1.0)
    out["priorities"] = _rel(u16["per_sample"], u32["per_sample"])
    out["priorities max"] = float(
        (
            (u16["per_sample"] - u32["per_sample"]).abs() / u32["per_sample"].abs().clamp_min(1e-12)
        ).max()
    )
    last = _stream_last(f32)
    groups: dict[str, list[str]] = defaultdict(list)
    for name in u32["grads"]:
        groups[param_group(name, last)].append(name)
    grads: dict[str, dict[str, float]] = {}
    for group, names in groups.items():
        g32 = torch.cat([u32["grads"][n].flatten() for n in names])
        g16 = torch.cat([u16["grads"][n].flatten() for n in names])
        norm32 = float(torch.linalg.vector_norm(g32))
        grads[group] = {
            "cos": _cos(g16, g32),
            "norm ratio": float(torch.linalg.vector_norm(g16)) / max(norm32, 1e-30),
        }
    out["grads"] = grads
    return out


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Over batches: means of the relative differences, the largest of ``max`` and ``gap``
    figures, the worst cosine (largest ``1 - cos``), the norm ratio farthest from 1 and the
    mean ratio (a systematic shrink or growth shows there), pooled flip rates."""
    out: dict[str, Any] = {}
    for key in rows[0]:
        if key in ("grads", "flips", "rows"):
            continue
        values = [r[key] for r in rows]
        out[key] = max(values) if "max" in key or "gap" in key else float(np.mean(values))
    out["a* flips"] = sum(r["flips"] for r in rows) / sum(r["rows"] for r in rows)
    grads: dict[str, dict[str, float]] = {}
    for group in rows[0]["grads"]:
        cos = [r["grads"][group]["cos"] for r in rows]
        ratio = [r["grads"][group]["norm ratio"] for r in rows]
        grads[group] = {
            "1 - cos": max(max(1.0 - c for c in cos), 0.0),
            "norm ratio": max(ratio, key=lambda x: abs(x - 1.0)),
            "norm ratio mean": float(np.mean(ratio)),
        }
    out["grads"] = grads
    return out


# ------------------------------------------------------------------------------ main
def measure(
    agent: str, setting: str, *, game: str, batches: int, updates: int, seed: int = 0
) -> dict[str, Any]:
    cfg = run_config(agent, setting)
    replay = fill_replay(cfg, game, steps=max(2000, cfg.trainer.batch_size * 20), seed=seed)
    pair = make_pair(cfg, num_actions=replay_actions(game))
    f32 = pair["fp32"]
    torch.manual_seed(seed)
    for _ in range(updates):  # move the weights off their initialisation
        batch = replay.sample(cfg.trainer.batch_size)
        result = f32.learn(batch)
        if cfg.replay.prioritized:
            replay.update_priorities(batch.indices, result.loss)
    if updates:
        f32.sync_target()
    copy_weights(f32, pair["bf16"])
    rows = [
        compare_update(pair, replay.sample(cfg.trainer.batch_size), seed=seed + i)
        for i in range(batches)
    ]
    return summarize(rows)


def replay_actions(game: str) -> int:
    from distrl_agents.envs import make_atari_env

    env = make_atari_env(game, protocol="nature", num_envs=1, seed=0)
    n = int(env.num_actions)
    env.close()
    return n


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    return f"{x:.2g}" if abs(x) < 0.01 else f"{x:.3f}"


def markdown(results: dict[str, dict[str, Any]], setting: str) -> str:
    agents = [a for a in results if results[a]]
    keys: list[str] = []
    groups: list[str] = []
    for a in agents:
        keys += [k for k in results[a] if k != "grads" and k not in keys]
        groups += [g for g in results[a]["grads"] if g not in groups]
    lines = [f"| {setting} | " + " | ".join(agents) + " |", "|---|" + "---:|" * len(agents)]
    for k in keys:
        cells = [_fmt(results[a][k]) if k in results[a] else "-" for a in agents]
        lines.append(f"| {k} | " + " | ".join(cells) + " |")
    for g in groups:
        for stat in ("1 - cos", "norm ratio", "norm ratio mean"):
            cells = [
                _fmt(results[a]["grads"][g][stat]) if g in results[a]["grads"] else "-"
                for a in agents
            ]
            lines.append(f"| grad {g}: {stat} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=AGENTS)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    p.add_argument("--game", default="breakout")
    p.add_argument("--batches", type=int, default=8, help="batches compared per agent")
    p.add_argument("--updates", type=int, default=200, help="fp32 updates before measuring")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", default=None, help="also write every figure to this file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    everything: dict[str, dict[str, Any]] = {}
    for setting in args.settings:
        results: dict[str, Any] = {}
        for agent in args.agents:
            start = time.perf_counter()
            results[agent] = measure(
                agent, setting, game=args.game, batches=args.batches, updates=args.updates
            )
            print(f"{setting} {agent}: {time.perf_counter() - start:.0f} s", file=sys.stderr)
            everything[setting] = results
            if args.json:  # after each agent: a long run keeps what it measured
                with open(args.json, "w") as fh:
                    json.dump(everything, fh, indent=2)
        print(markdown(results, setting) + "\n", flush=True)


if __name__ == "__main__":
    main()
