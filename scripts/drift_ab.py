"""How far two trainings drift apart when only the order of fp32 arithmetic differs.

    python scripts/drift_ab.py [--variant compile|channels-last|threads-2] [--updates 1200]
                               [--sync-every 100]
    python scripts/drift_ab.py --checkpoint RUN_DIR [--variant ...] [--updates 30]

Two C51 agents with data-efficient Rainbow's settings (the DER network, batch 32, double Q, Adam,
clipping at 10; 18 actions) from the same seed learn from the very same replay batches, one
eager and one with ``--variant`` (``trainer.compile=update``, or channels-last convolutions:
another order of the same fp32 operations; or ``threads-2``: the same eager update at two torch
threads, whose kernels may split their sums another way). The target networks are synced every
``--sync-every`` updates. At a few points it prints the relative L2 distance of the online and
target weights and the largest relative difference of the per-sample losses. The base agent runs
at one thread, on the CPU.

``--checkpoint RUN_DIR`` asks the same of a trained agent, without the drift: from the newest
checkpoint of a run (its agent, whatever its settings, and batches of its saved replay), each
of ``--updates`` updates is made by the eager agent and by the variant from the very same state
(the variant is reset to the eager agent's state before each); printed are the per-sample
losses' largest relative difference, the relative difference of the two parameter updates and
the mean signed difference of the loss (a bias would show there).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_limit import der_c51, fill_replay  # the limit benchmark's DER agent and replay

VARIANTS: dict[str, dict[str, Any]] = {
    "compile": {"compile": "update"},
    "channels-last": {"channels_last": True},
    "threads-2": {},
}
THREADS = {"threads-2": 2}  # torch threads of the variant's updates (else 1)
ACTIONS = 18


@torch.no_grad()
def rel_distance(a: torch.nn.Module, b: torch.nn.Module) -> float:
    num = sum(float(((p - q) ** 2).sum()) for p, q in zip(a.parameters(), b.parameters()))
    den = sum(float((p**2).sum()) for p in a.parameters())
    return (num / den) ** 0.5


def from_checkpoint(run_dir: Path, variant: str, updates: int) -> None:
    """One update at a time from a trained state (``--checkpoint``; module docstring)."""
    from distrl_agents.agents import make_agent
    from distrl_agents.replay import ReplayBuffer
    from distrl_agents.training.checkpoint import REPLAY_FILE, latest_checkpoint, load_state

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or not (ckpt / REPLAY_FILE).is_file():
        sys.exit(f"drift_ab: {run_dir} has no checkpoint with a saved replay buffer")
    state = load_state(ckpt)["agent"]
    spec = {k: v for k, v in state["hparams"].items() if k != "name"}

    def build(**overrides: Any) -> Any:
        agent = make_agent(state["name"], **{**spec, "compile": "off", **overrides})
        agent.load_state_dict(state)
        return agent

    base, other = build(channels_last=False), build(**VARIANTS[variant])
    cpu = torch.device("cpu")
    replay = ReplayBuffer.load(ckpt / REPLAY_FILE, device=cpu, storage_device=cpu)
    print(f"{state['name']} from {ckpt} (update {state['num_updates']}): eager against {variant}")
    loss_rel, step_rel, bias = [], [], []
    for _ in range(updates):
        batch = replay.sample(32)
        other.load_state_dict(base.state_dict())  # copies: the optimiser owns its moments
        before = torch.cat([p.detach().flatten() for p in base.online.parameters()])
        torch.set_num_threads(1)
        a = base.learn(batch)
        torch.set_num_threads(THREADS.get(variant, 1))
        b = other.learn(batch)
        step_a = torch.cat([p.detach().flatten() for p in base.online.parameters()]) - before
        step_b = torch.cat([p.detach().flatten() for p in other.online.parameters()]) - before
        loss_rel.append(float(((a.loss - b.loss).abs() / a.loss.abs().clamp_min(1e-12)).max()))
        step_rel.append(float((step_b - step_a).norm() / step_a.norm()))
        bias.append(float((b.loss - a.loss).mean() / a.loss.mean()))
    t = torch.tensor([loss_rel, step_rel, bias])
    print(
        f"{updates} updates: per-sample loss max relative difference {t[0].max():.2e}; "
        f"update relative difference median {t[1].median():.2e} (max {t[1].max():.2e}); "
        f"mean loss difference {t[2].mean():+.2e} (sd {t[2].std():.1e})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANTS), default="compile")
    p.add_argument("--updates", type=int, default=None, help="1200; with --checkpoint 30")
    p.add_argument("--sync-every", type=int, default=100)
    p.add_argument("--checkpoint", default=None, help="a run directory: from its trained state")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.checkpoint:
        return from_checkpoint(Path(args.checkpoint), args.variant, args.updates or 30)
    args.updates = args.updates or 1200
    base, other = der_c51(ACTIONS, seed=0), der_c51(ACTIONS, seed=0, **VARIANTS[args.variant])
    rb = fill_replay(ACTIONS, 100_000, 5000)
    marks = {1, 10, 50, args.sync_every, 2 * args.sync_every, args.updates}
    marks |= {m for m in (400, 800) if m < args.updates}
    print(
        f"c51 (DER settings), eager against {args.variant}; target synced every {args.sync_every}"
    )
    start = time.time()
    for i in range(1, args.updates + 1):
        batch = rb.sample(32)
        torch.set_num_threads(1)
        a = base.learn(batch)
        torch.set_num_threads(THREADS.get(args.variant, 1))
        b = other.learn(batch)
        if i % args.sync_every == 0:
            base.sync_target()
            other.sync_target()
        if i in marks:
            loss_rel = (a.loss - b.loss).abs() / a.loss.abs().clamp_min(1e-12)
            print(
                f"update {i:>5}: online weights {rel_distance(base.online, other.online):.2e}, "
                f"target {rel_distance(base.target, other.target):.2e}, per-sample loss max "
                f"{float(loss_rel.max()):.2e} ({time.time() - start:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
