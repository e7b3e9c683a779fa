"""How far two trainings drift apart when only the order of fp32 arithmetic differs.

    python scripts/drift_ab.py [--variant compile|channels-last|threads-2] [--updates 1200]
                               [--sync-every 100]

Two C51 agents with data-efficient Rainbow's settings (the DER network, batch 32, double Q, Adam,
clipping at 10; 18 actions) from the same seed learn from the very same replay batches, one
eager and one with ``--variant`` (``trainer.compile=update``, or channels-last convolutions:
another order of the same fp32 operations; or ``threads-2``: the same eager update at two torch
threads, whose kernels may split their sums another way). The target networks are synced every
``--sync-every`` updates. At a few points it prints the relative L2 distance of the online and
target weights and the largest relative difference of the per-sample losses. The base agent runs
at one thread, on the CPU.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variant", choices=sorted(VARIANTS), default="compile")
    p.add_argument("--updates", type=int, default=1200)
    p.add_argument("--sync-every", type=int, default=100)
    args = p.parse_args()
    torch.set_num_threads(1)
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
