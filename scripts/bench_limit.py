"""One data-efficient Rainbow update (C51, ``experiment=atari100k``) against what this CPU can do.

Counts the arithmetic of one update analytically (batch 32, 4x84x84 frames, the DER network:
conv 32x5x5/5, conv 64x5x5/5, dueling noisy streams of 256 hidden units, 51 atoms), times the
real update part by part (replay sample, noise, the three forward passes, loss, backward,
gradient clipping, Adam, priority update), and times each part's kernels in isolation at the
same shapes (the part's "limit": its convolutions and matrix products alone, fp32, and bf16
where the CPU has bf16 units; for element-wise parts the bytes they move at this machine's
measured copy bandwidth). Also the machine's peak fp32 GFLOP/s on a large matrix product.

    python scripts/bench_limit.py [--threads 1] [--actions 18] [--rounds 5] [--clock cpu|wall]

The forward passes of one update: the online network on ``obs`` (with gradients), the target
network on ``next_obs`` and, for double Q-learning (DER's), the online network on ``next_obs``
to select the action. The backward is that of the first pass only; its first convolution needs
no input gradient. Every figure is a median over ``--rounds`` rounds, the parts and their
microbenchmarks alternated within each round. The last rows time the whole update (replay sample,
``learn``, priority update) as it is, under ``compile=update`` and in channels-last memory format
(``--no-compile`` skips those two).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import statistics
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

from distrl_agents.agents import make_agent
from distrl_agents.agents.runtime import clip_or_measure
from distrl_agents.agents.targets import at_actions, bellman_target, greedy_action
from distrl_agents.losses import categorical_cross_entropy, categorical_projection
from distrl_agents.networks import CategoricalHead
from distrl_agents.replay import ReplayBuffer
from distrl_agents.training.device import tune_host_allocator

B, S, HW, ATOMS, HIDDEN = 32, 4, 84, 51, 256
# (in_channels, out_channels, kernel, stride, input size)
CONVS = [(S, 32, 5, 5, 84), (32, 64, 5, 5, 16)]


def conv_out(size: int, k: int, stride: int) -> int:
    return (size - k) // stride + 1


def linears(actions: int) -> list[tuple[str, int, int]]:
    """(name, in, out) of the noisy layers: both dueling streams' hidden and output layers."""
    feat = 64 * 3 * 3
    return [
        ("adv hidden", feat, HIDDEN),
        ("adv out", HIDDEN, actions * ATOMS),
        ("value hidden", feat, HIDDEN),
        ("value out", HIDDEN, ATOMS),
    ]


def forward_flops(actions: int) -> dict[str, float]:
    """FLOPs (2 x multiply-adds) of one forward pass of batch ``B``, per kind."""
    conv = 0.0
    for cin, cout, k, s, size in CONVS:
        o = conv_out(size, k, s)
        conv += 2.0 * o * o * cout * k * k * cin * B
    lin = sum(2.0 * i * o * B for _, i, o in linears(actions))
    # The noise matrix: w = mu + sigma * outer(eps_out, eps_in), 3 flops per weight.
    noise = sum(3.0 * i * o for _, i, o in linears(actions))
    return {"conv": conv, "linear": lin, "noise": noise}


def backward_flops(actions: int) -> dict[str, float]:
    """The backward of the online obs pass: 2x the forward, less conv1's input gradient; the
    noise matrix's backward is ``grad_sigma = grad_w * outer`` (2 flops per weight)."""
    cin, cout, k, s, size = CONVS[0]
    o = conv_out(size, k, s)
    conv1 = 2.0 * o * o * cout * k * k * cin * B
    fwd = forward_flops(actions)
    noise = sum(2.0 * i * o for _, i, o in linears(actions))
    return {"conv": 2 * fwd["conv"] - conv1, "linear": 2 * fwd["linear"], "noise": noise}


#: The clock: this thread's CPU time by default (the machine may be shared; torch runs on the
#: calling thread at one thread), wall time with ``--clock wall``.
CLOCK: Callable[[], float] = time.thread_time


def ms(fn: Callable[[], Any], reps: int) -> float:
    fn()
    start = CLOCK()
    for _ in range(reps):
        fn()
    return (CLOCK() - start) / reps * 1e3


def peak_gflops(dtype: torch.dtype, n: int = 1024) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    t = ms(lambda: torch.mm(a, b), 10)
    return 2.0 * n**3 / (t * 1e-3) / 1e9


def copy_bandwidth_gbs(n: int = 16 * 1024 * 1024) -> float:
    """GB/s of ``y.copy_(x)`` on ``n``-byte fp32 tensors (read + write counted); 16 MB: about the
    32 MB Adam moves over the DER network's parameters, gradients and moments."""
    x, y = torch.randn(n // 4), torch.empty(n // 4)
    t = ms(lambda: y.copy_(x), 10)
    return 2.0 * n / (t * 1e-3) / 1e9


class Kernels:
    """The update's kernels alone, at its shapes, in ``dtype`` (the microbenchmarks)."""

    def __init__(self, actions: int, dtype: torch.dtype) -> None:
        g = torch.Generator().manual_seed(0)
        self.dtype = dtype
        self.x = torch.rand(B, S, HW, HW, generator=g).to(dtype)
        self.convs = []
        inp = self.x
        for cin, cout, k, s, _ in CONVS:
            w = (torch.randn(cout, cin, k, k, generator=g) * 0.05).to(dtype)
            bias = torch.zeros(cout).to(dtype)
            out = F.conv2d(inp, w, bias, stride=s)
            self.convs.append((inp, w, bias, s, torch.randn_like(out)))
            inp = out
        feat = inp.flatten(1)
        self.lins = []
        for name, i, o in linears(actions):
            x = feat if "hidden" in name else torch.randn(B, HIDDEN).to(dtype)
            w = (torch.randn(o, i, generator=g) * 0.05).to(dtype)
            self.lins.append((x, w, torch.zeros(o).to(dtype), torch.randn(B, o).to(dtype)))
        self.noise = [
            (torch.randn(o, i), torch.randn(o, i), torch.randn(o), torch.randn(i))
            for _, i, o in linears(actions)
        ]

    def forward(self) -> None:
        for x, w, b, s, _ in self.convs:
            F.conv2d(x, w, b, stride=s).relu_()
        for x, w, b, _ in self.lins:
            F.linear(x, w, b)

    def backward(self) -> None:
        for n, (x, w, _, s, gy) in enumerate(self.convs):
            torch.ops.aten.convolution_backward(
                gy, x, w, [w.shape[0]], [s, s], [0, 0], [1, 1], False, [0, 0], 1,
                [n > 0, True, True],
            )  # fmt: skip
        for x, w, _, gy in self.lins:
            gy.t().mm(x)  # weight gradient
            gy.mm(w)  # input gradient
            gy.sum(0)

    def noise_forward(self) -> None:
        for mu, sigma, eo, ei in self.noise:
            mu + sigma * torch.outer(eo, ei)

    def noise_backward(self) -> None:
        for _, sigma, eo, ei in self.noise:
            sigma * torch.outer(eo, ei)


def der_c51(actions: int, **kw: Any) -> Any:
    """A C51 agent with data-efficient Rainbow's settings (``experiment=atari100k``'s network,
    Adam, clipping, double Q) for ``actions`` actions; ``kw``: more agent options."""
    return make_agent(
        "c51",
        num_actions=actions,
        obs_shape=(S, HW, HW),
        network={"torso": "der", "hidden": HIDDEN, "dueling": True, "noisy": True,
                 "noisy_std": 0.1},
        optimizer="adam", lr=1e-4, optimizer_eps=1.5e-4, max_grad_norm=10.0, double_dqn=True,
        **kw,
    )  # fmt: skip


def fill_replay(actions: int, capacity: int, fill: int) -> ReplayBuffer:
    rb = ReplayBuffer(
        capacity, n_step=20, gamma=0.99, prioritized=True, alpha=0.5, beta=0.4, seed=0
    )
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 1, HW, HW), dtype=np.uint8)
    for t in range(fill):
        rb.add(
            frames[t % 64], [t % actions], [float(rng.random() < 0.1)], [t % 500 == 499], [False]
        )
    return rb


def timed_update(agent: Any, rb: ReplayBuffer, out: dict[str, list[float]]) -> None:
    """One C51 update (``Agent.learn`` with ``C51Agent.compute_loss`` inlined), timed by part."""
    marks = [("start", CLOCK())]

    def mark(name: str) -> None:
        marks.append((name, CLOCK()))

    batch = rb.sample(B)
    mark("replay sample")
    agent.online.train(True)
    agent.online.reset_noise(agent.generator)
    agent.target.reset_noise(agent.generator)
    mark("reset noise")
    head = cast(CategoricalHead, agent.online.head)
    support = head.support
    action = batch.action
    logits = head.logits(agent.features(agent.online, batch.obs))
    log_p = F.log_softmax(at_actions(logits.float(), action), dim=-1)
    mark("fwd online obs")
    with torch.no_grad():
        next_dist = agent.distribution(agent.target, batch.next_obs)
        mark("fwd target next_obs")
        select = agent.distribution(agent.online, batch.next_obs)
        mark("fwd online next_obs")
        p_next = next_dist.for_actions(greedy_action(select)).probs.squeeze(1)
        atoms = bellman_target(batch.reward, batch.discount, support)
        m = categorical_projection(atoms, p_next, support)
    per_sample = categorical_cross_entropy(m, log_p)
    loss = (batch.weights.float() * per_sample).mean()
    mark("target + loss")
    for opt in agent.optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    mark("backward")
    clip_or_measure(agent._groups, agent.config.max_grad_norm)
    mark("clip grad norm")
    for opt in agent.optimizers:
        opt.step()
    mark("adam")
    rb.update_priorities(batch.indices, per_sample.detach())
    mark("priority update")
    for (_, t0), (name, t1) in itertools.pairwise(marks):
        out.setdefault(name, []).append((t1 - t0) * 1e3)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--actions", type=int, default=18)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--updates", type=int, default=40, help="timed updates per round")
    p.add_argument("--fill", type=int, default=20_000, help="transitions in the replay")
    p.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    p.add_argument(
        "--no-compile", action="store_true", help="skip the whole update under compile=update"
    )
    args = p.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    tune_host_allocator()
    A = args.actions
    bf16 = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()

    agent = der_c51(A)
    variants = {"": agent}
    if not args.no_compile:
        variants[", compile=update"] = der_c51(A, compile="update")
        variants[", channels-last"] = der_c51(A, channels_last=True)
    rb = fill_replay(A, 100_000, args.fill)
    k32 = Kernels(A, torch.float32)
    k16 = Kernels(A, torch.bfloat16) if bf16 else None
    n_params = sum(p.numel() for p in agent.online.parameters())
    reps = args.updates

    parts: dict[str, list[float]] = {}
    whole: dict[str, list[float]] = {}
    micro: dict[str, list[float]] = {}
    peaks: list[float] = []
    bws: list[float] = []

    def whole_learn(learner: Any) -> None:
        batch = rb.sample(B)
        res = learner.learn(batch)
        rb.update_priorities(batch.indices, res.loss)

    for _ in range(3):  # warm-up (and compiling)
        timed_update(agent, rb, {})
        for learner in variants.values():
            whole_learn(learner)
    for _ in range(args.rounds):
        for _ in range(reps):
            timed_update(agent, rb, parts)
        for label, learner in variants.items():
            whole.setdefault(label, []).append(ms(functools.partial(whole_learn, learner), reps))
        for name, kern in (("fp32", k32), ("bf16", k16)):
            if kern is None:
                continue
            micro.setdefault(f"fwd {name}", []).append(ms(kern.forward, reps))
            micro.setdefault(f"bwd {name}", []).append(ms(kern.backward, reps))
        micro.setdefault("noise fwd", []).append(ms(k32.noise_forward, reps))
        micro.setdefault("noise bwd", []).append(ms(k32.noise_backward, reps))
        peaks.append(peak_gflops(torch.float32))
        bws.append(copy_bandwidth_gbs())

    med = {k: statistics.median(v) for k, v in parts.items()}
    mic = {k: statistics.median(v) for k, v in micro.items()}
    peak, bw = statistics.median(peaks), statistics.median(bws)
    peak16 = peak_gflops(torch.bfloat16) if bf16 else float("nan")
    fwd, bwd = forward_flops(A), backward_flops(A)
    noise_f, noise_b = mic["noise fwd"], mic["noise bwd"]
    # Bytes that Adam (fused: read param, grad, m, v; write param, m, v) and the clip (read the
    # gradients twice: norm, then scale in place: read + write) move, fp32.
    adam_bytes = n_params * 4 * 7
    clip_bytes = n_params * 4 * 3
    gf = 1e-9
    fwd_gflop = (fwd["conv"] + fwd["linear"] + fwd["noise"]) * gf
    bwd_gflop = (bwd["conv"] + bwd["linear"] + bwd["noise"]) * gf

    rows: list[tuple[str, float, float, float, float]] = []  # part, GFLOP, ms, limit fp32, bf16
    f16 = mic.get("fwd bf16", float("nan"))
    for name in ("fwd online obs", "fwd target next_obs", "fwd online next_obs"):
        rows.append((name, fwd_gflop, med[name], mic["fwd fp32"] + noise_f, f16 + noise_f))
    rows.append(
        ("backward", bwd_gflop, med["backward"], mic["bwd fp32"] + noise_b,
         mic.get("bwd bf16", float("nan")) + noise_b)
    )  # fmt: skip
    rows.append(("clip grad norm", 0.0, med["clip grad norm"], clip_bytes / bw / 1e6, float("nan")))
    rows.append(("adam", 0.0, med["adam"], adam_bytes / bw / 1e6, float("nan")))
    for name in ("replay sample", "priority update", "reset noise", "target + loss"):
        rows.append((name, 0.0, med[name], float("nan"), float("nan")))

    print(f"CPU: {cpu_model()}; torch {torch.__version__}; {args.threads} thread(s); "
          f"{A} actions; C51 DER update, batch {B}; {n_params:,} online parameters")  # fmt: skip
    print(f"clock: {'this thread' + chr(39) + 's CPU time' if args.clock == 'cpu' else 'wall'}; "
          f"medians of {args.rounds} rounds of {reps} updates")  # fmt: skip
    print(f"peak fp32 matmul (1024^3): {peak:.1f} GFLOP/s; bf16: {peak16:.1f} GFLOP/s; "
          f"copy bandwidth {bw:.1f} GB/s")  # fmt: skip
    print(
        f"\n{'part':<22}{'GFLOP':>7}{'ms':>8}{'limit ms':>10}{'fraction':>10}"
        f"{'bf16 lim':>10}{'at peak ms':>12}"
    )
    tot = [0.0, 0.0, 0.0, 0.0]
    for name, g, t, lim, lim16 in rows:
        frac = lim / t if lim == lim else float("nan")
        at_peak = g / peak * 1e3
        print(
            f"{name:<22}{g:>7.3f}{t:>8.2f}{lim:>10.2f}{frac:>10.2f}{lim16:>10.2f}{at_peak:>12.2f}"
        )
        tot[0] += g
        tot[1] += t
        tot[2] += lim if lim == lim else 0.0
        tot[3] += at_peak
    print(f"{'sum of parts':<22}{tot[0]:>7.3f}{tot[1]:>8.2f}{tot[2]:>10.2f}"
          f"{tot[2] / tot[1]:>10.2f}{'':>10}{tot[3]:>12.2f}")  # fmt: skip
    base = statistics.median(whole[""])
    for label, times in whole.items():
        t = statistics.median(times)
        print(f"{'whole update' + label:<30}{t:>8.2f} ms ({base / t:.2f}x)")
    print(
        f"arithmetic: {tot[0] / (tot[1] * 1e-3):.1f} GFLOP/s achieved over the whole update, "
        f"{tot[0] / peak * 1e3 / tot[1]:.2f} of peak; convolutions {fwd['conv'] * 3 * gf:.3f} + "
        f"{bwd['conv'] * gf:.3f}, matrix products {fwd['linear'] * 3 * gf:.3f} + "
        f"{bwd['linear'] * gf:.3f} GFLOP"
    )
    print("limit: the part's convolutions / matrix products / noise matrix timed alone at the "
          "same shapes (fp32; 'bf16 lim': the same in bf16), or for clip / adam the bytes they "
          "move at the copy bandwidth; fraction = limit / ms")  # fmt: skip


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
