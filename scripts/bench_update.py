"""Milliseconds per learning update for each agent (batch 32, Nature torso, 4x84x84 uint8, 18
actions unless ``--actions``), in fp32 and bf16 autocast (and channels-last), on CPU and on CUDA when present.

    python scripts/bench_update.py [--agents dqn c51 ...] [--iters 20] [--threads 2]
                                   [--compile [update|graphs]] [--bf16-outputs] [--rounds 1]
    python scripts/bench_update.py --breakdown [--agents ...]   # where an fp32 update's time goes

Presets are the paper ones (configs/agent/*.yaml values via the constructors' defaults).
The bf16 columns compute the heads' output layers in fp32 (``network.fp32_output``, the
default); ``--bf16-outputs`` adds the same bf16 variants with the output layers left to autocast
(bf16 values) and the ratio, i.e. what fp32-exact values cost.

``--breakdown`` profiles fp32 updates on the CPU (``torch.profiler``) and prints, per agent, the
share of the update's time in the arithmetic any framework running the same network and loss has
to do (convolutions forward and backward, matrix products), in the optimiser step, and in
everything else (element-wise ops, the loss's gathers and reductions, Python and dispatch). The
first share bounds what a faster training loop, or a faster framework, could gain at equal
precision.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from distrl_agents.agents import AGENT_NAMES, make_agent
from distrl_agents.training.device import tune_host_allocator
from distrl_agents.types import Batch

AGENTS = list(AGENT_NAMES)  # every registered agent
# (precision, channels-last, compile mode, fp32 output layers)
VARIANTS = [("fp32", False, "off", True), ("bf16", False, "off", True), ("bf16", True, "off", True)]


def make_batch(device: str, batch_size: int = 32, num_actions: int = 18) -> Batch:
    g = torch.Generator().manual_seed(0)
    obs = torch.randint(0, 256, (batch_size, 4, 84, 84), generator=g, dtype=torch.uint8)
    next_obs = torch.randint(0, 256, (batch_size, 4, 84, 84), generator=g, dtype=torch.uint8)
    return Batch(
        obs=obs.to(device),
        action=torch.randint(0, num_actions, (batch_size,), generator=g).to(device),
        reward=torch.randn(batch_size, generator=g).to(device),
        discount=torch.full((batch_size,), 0.99).to(device),
        next_obs=next_obs.to(device),
        weights=torch.ones(batch_size).to(device),
        indices=torch.arange(batch_size).to(device),
    )


def build(
    name: str,
    device: str,
    precision: str,
    channels_last: bool,
    compile_mode: str,
    fp32_output: bool,
    warmup: int,
    num_actions: int = 18,
) -> tuple[Any, Batch]:
    agent = make_agent(
        name,
        num_actions=num_actions,
        obs_shape=(4, 84, 84),
        device=device,
        network={"torso": "nature", "fp32_output": fp32_output},
        precision=precision,
        channels_last=channels_last,
        compile=compile_mode,
    )
    batch = make_batch(device, num_actions=num_actions)
    for _ in range(warmup):
        agent.learn(batch)
    return agent, batch


def time_updates(agent: Any, batch: Batch, device: str, iters: int) -> float:
    """Milliseconds per ``learn`` over ``iters`` updates."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        agent.learn(batch)
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters * 1000.0


# Self-time of these profiler ops is the network's arithmetic (oneDNN / BLAS kernels).
ARITHMETIC_OPS = (
    "aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution",
    "aten::thnn_conv2d", "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward",
    "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::baddbmm",
)  # fmt: skip


def breakdown(
    name: str, iters: int, warmup: int, num_actions: int
) -> tuple[float, dict[str, float]]:
    """ms per fp32 CPU update, and the share of its profiled time per kind: the arithmetic ops'
    self time, the optimiser step's whole time (``Optimizer.step`` and what it calls: a fused
    Adam kernel, or TF-style RMSProp's element-wise ops), and the rest."""
    from torch.profiler import ProfilerActivity, profile

    agent, batch = build(name, "cpu", "fp32", False, "off", True, warmup, num_actions)
    ms = time_updates(agent, batch, "cpu", iters)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iters):
            agent.learn(batch)
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    arithmetic = sum(e.self_cpu_time_total for e in events if e.key in ARITHMETIC_OPS)
    optimiser = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    return ms, {
        "arithmetic": arithmetic / total,
        "optimiser": optimiser / total,
        "other": (total - arithmetic - optimiser) / total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", nargs="+", default=AGENTS)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time every variant this many times, round-robin, and report the fastest round "
        "(variants then share the machine's load alike; use >1 on a busy machine)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on CPU")
    parser.add_argument("--devices", nargs="+", default=None)
    parser.add_argument(
        "--compile",
        nargs="?",
        const="update",
        choices=["update", "graphs"],
        help="add compiled variants: update (default), or graphs (update + CUDA graphs on CUDA)",
    )
    parser.add_argument(
        "--allocator",
        choices=["tuned", "default"],
        default="tuned",
        help="tuned: glibc keeps large blocks for reuse, as the training loop sets it",
    )
    parser.add_argument(
        "--bf16-outputs",
        action="store_true",
        help="add the bf16 variants with bf16 output layers (fp32_output=False) to compare",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="profile fp32 CPU updates: share of convolution / matrix arithmetic, optimiser, rest",
    )
    parser.add_argument(
        "--actions", type=int, default=18, help="number of actions (Breakout has 4)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.allocator == "tuned":
        tune_host_allocator()
    if args.breakdown:
        print(
            f"fp32 update on the CPU, batch 32, Nature torso, {args.actions} actions, "
            f"{args.threads} threads, torch "
            f"{torch.__version__}; share of the profiled time"
        )
        print("| agent | ms per update | convolutions + matrix products | optimiser | other |")
        print("|---|---:|---:|---:|---:|")
        for name in args.agents:
            ms, sh = breakdown(name, args.iters, args.warmup, args.actions)
            print(
                f"| {name} | {ms:.1f} | {sh['arithmetic']:.0%} | {sh['optimiser']:.0%} "
                f"| {sh['other']:.0%} |",
                flush=True,
            )
        return
    variants = VARIANTS
    if args.compile:
        variants = [
            *variants,
            ("fp32", False, args.compile, True),
            ("bf16", True, args.compile, True),
        ]
    if args.bf16_outputs:
        variants = [*variants, *((p, cl, c, False) for p, cl, c, _ in variants if p == "bf16")]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    labels = [
        f"{p}{'+CL' if cl else ''}{'' if c == 'off' else '+' + c}{'' if out else ' bf16-out'}"
        for p, cl, c, out in variants
    ]
    extra = " best bf16 / best bf16-out |" if args.bf16_outputs else ""
    print(
        f"ms per update, batch 32, Nature torso, 4x84x84 uint8, {args.actions} actions, torch "
        f"{torch.__version__}, {args.threads} CPU threads, {args.iters} iters, "
        f"{args.allocator} allocator, fastest of {args.rounds} round(s)"
    )
    print("| agent | device | " + " | ".join(labels) + " | fp32 / best bf16 |" + extra)
    print("|---|---|" + "---:|" * (len(labels) + 1 + bool(extra)))
    for device in devices:
        for name in args.agents:
            agents = [build(name, device, *v, args.warmup, args.actions) for v in variants]
            rounds = [
                [time_updates(agent, batch, device, args.iters) for agent, batch in agents]
                for _ in range(args.rounds)
            ]
            times = [min(r[i] for r in rounds) for i in range(len(variants))]
            del agents
            best_bf16 = min(t for t, (p, _, _, out) in zip(times, variants) if p == "bf16" and out)
            cells = " | ".join(f"{t:.1f}" for t in times)
            row = f"| {name} | {device} | {cells} | {times[0] / best_bf16:.2f}x |"
            if args.bf16_outputs:
                best_out = min(t for t, (_, _, _, out) in zip(times, variants) if not out)
                row += f" {best_bf16 / best_out:.2f}x |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
