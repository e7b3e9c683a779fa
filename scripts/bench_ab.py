"""One agent's learning update at a git revision (``--base``) against the working tree, in one
process: the same agent built from both versions of the package, the same batches, updates
alternated round after round, so that a busy machine slows both alike.

    python scripts/bench_ab.py [--base main] [--agent c51] [--network der] [--rounds 9]
                               [--updates 20] [--precision fp32] [--channels-last]

``--base``'s ``distrl_agents`` is exported (``git archive``) into a temporary folder as the
package ``distrl_agents_base``, so both import side by side. ``--network der`` is the
``experiment=atari100k`` update (DER torso, 256 hidden, dueling, noisy 0.1, double Q, Adam,
gradient norm 10, batch 32, 18 actions); ``nature`` the agent's preset on the Nature network.

First both agents run the same ``--check`` updates from the same seed and the script says
whether every per-sample loss, metric and parameter is bit-for-bit equal (else the largest
relative difference of the per-sample losses). Then the timing: each round runs ``--updates``
updates of each side, one of each in turn (the side that goes first alternating), on this thread's CPU time
(``time.thread_time``; torch runs on the calling thread at one thread), and prints each side's
median ms per update and the ratio base / working tree (above 1: the working tree is faster),
per round and over all rounds.
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from distrl_agents.training.device import tune_host_allocator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import bench_limit  # noqa: E402  (scripts/ on the path)

DER = {"torso": "der", "hidden": 256, "dueling": True, "noisy": True, "noisy_std": 0.1}


def import_base(rev: str, into: Path) -> Any:
    """``distrl_agents`` at ``rev``, importable as ``distrl_agents_base``; its ``agents``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "distrl_agents"], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    package = into / "distrl_agents"
    for path in package.rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bdistrl_agents\b", "distrl_agents_base", text))
    package.rename(into / "distrl_agents_base")
    sys.path.insert(0, str(into))
    return importlib.import_module("distrl_agents_base.agents")


def build(agents_module: Any, args: argparse.Namespace) -> Any:
    kwargs: dict[str, Any] = {"precision": args.precision, "channels_last": args.channels_last}
    if args.network == "der":
        kwargs.update(
            network=DER,
            optimizer="adam",
            lr=1e-4,
            optimizer_eps=1.5e-4,
            max_grad_norm=10.0,
            double_dqn=True,
        )
    else:
        kwargs.update(network={"torso": "nature"})
    return agents_module.make_agent(
        args.agent, num_actions=args.actions, obs_shape=(4, 84, 84), **kwargs
    )


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)


def check(base: Any, new: Any, batches: list[Any]) -> None:
    """Run both agents over ``batches``; print whether they stay bit-for-bit equal."""
    identical, worst = True, 0.0
    for batch in batches:
        rb, rn = base.learn(batch), new.learn(batch)
        identical &= same(rb.loss, rn.loss) and same(rb.metric_values, rn.metric_values)
        rel = ((rb.loss - rn.loss).abs() / rb.loss.abs().clamp_min(1e-12)).max().item()
        worst = max(worst, rel)
    for pb, pn in zip(base.online.parameters(), new.online.parameters(), strict=True):
        identical &= same(pb, pn)
    verdict = (
        "yes" if identical else f"NO (max relative difference of per-sample losses {worst:.3g})"
    )
    print(f"bit-identical over {len(batches)} updates (losses, metrics, parameters): {verdict}")


def timed(agent: Any, batches: list[Any], start: int, count: int) -> list[float]:
    out = []
    for i in range(count):
        batch = batches[(start + i) % len(batches)]
        t0 = time.thread_time()
        agent.learn(batch)
        out.append((time.thread_time() - t0) * 1e3)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--base", default="main", help="git revision to compare against")
    p.add_argument("--agent", default="c51")
    p.add_argument("--network", choices=["der", "nature"], default="der")
    p.add_argument("--actions", type=int, default=18)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--updates", type=int, default=20, help="timed updates per side and round")
    p.add_argument("--check", type=int, default=10, help="updates compared bit for bit")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tune_host_allocator()
    from distrl_agents import agents as new_agents

    with tempfile.TemporaryDirectory() as tmp:
        base_agents = import_base(args.base, Path(tmp))
        rb = bench_limit.fill_replay(args.actions, 100_000, 5000)
        batches = [rb.sample(32) for _ in range(max(args.updates, args.check))]
        check(build(base_agents, args), build(new_agents, args), batches[: args.check])
        base, new = build(base_agents, args), build(new_agents, args)
        for agent in (base, new):
            timed(agent, batches, 0, 5)  # warm-up
        sides = [("base", base), ("new", new)]
        times: dict[str, list[float]] = {"base": [], "new": []}
        ratios = []
        for r in range(args.rounds):
            medians = {}
            for i in range(args.updates):  # one update of each, in turn, the first alternating
                batch = batches[(r * args.updates + i) % len(batches)]
                for name, agent in sides if (r + i) % 2 == 0 else sides[::-1]:
                    t0 = time.thread_time()
                    agent.learn(batch)
                    times[name].append((time.thread_time() - t0) * 1e3)
            for name, _ in sides:
                medians[name] = statistics.median(times[name][-args.updates :])
            ratios.append(medians["base"] / medians["new"])
            print(
                f"round {r}: base {medians['base']:.2f} ms, working tree {medians['new']:.2f} ms, "
                f"ratio {ratios[-1]:.3f}"
            )
        mb, mn = statistics.median(times["base"]), statistics.median(times["new"])
        print(
            f"{args.agent} {args.network} {args.precision}"
            f"{' channels-last' if args.channels_last else ''}, {args.threads} thread(s), "
            f"{args.rounds} rounds x {args.updates} updates: base ({args.base}) {mb:.2f} ms, "
            f"working tree {mn:.2f} ms per update (median), saving {mb - mn:.2f} ms; "
            f"ratio base / working tree {mb / mn:.3f} (per-round ratios: median "
            f"{statistics.median(ratios):.3f}, range {min(ratios):.3f}-{max(ratios):.3f})"
        )


if __name__ == "__main__":
    main()
