"""Whole-loop training speed per agent, next to the bound set by its measured parts.

For each agent (paper presets, Nature torso, batch 32, one update per 4 agent steps, one env),
this measures in one process:

* ``env``: ms per agent step of ale-py with our wrapper (random actions);
* ``act``: ms per batched forward pass choosing the actions;
* ``add``: ms per replay insert;
* ``update``: ms per learning update (sample + gradient step);
* ``bound``: agent steps/s if the loop cost nothing beyond those parts:
  ``1 / (env + act + add + update / update_period)``;
* ``loop``: agent steps/s of the real training loop (after warm-up), and ``loop / bound``.

    python scripts/bench_train.py [--agents c51 iqn] [--precision fp32 bf16] [--overlap both]
                                  [--compile [update|graphs]] [--steps 2000]

With overlap the bound is the serial sum of the parts; overlapping the environment with the update
can beat it (loop/bound > 1). The last column projects the wall time of a 200M-frame run
(50M agent steps) at the measured loop rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, cast

import numpy as np
import torch
from omegaconf import OmegaConf

from distrl_agents.agents import AGENT_NAMES
from distrl_agents.training.config import RunConfig
from distrl_agents.training.loop import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "distrl_agents" / "configs"


def agent_preset(name: str) -> dict[str, Any]:
    raw = OmegaConf.to_container(OmegaConf.load(CONFIGS / "agent" / f"{name}.yaml"), resolve=True)
    return cast(dict[str, Any], raw)  # a YAML mapping file loads as a dict


def make_config(
    agent: str, precision: str, args: argparse.Namespace, *, compile_mode: str, overlap: bool
) -> RunConfig:
    network = OmegaConf.to_container(OmegaConf.load(CONFIGS / "network" / "nature.yaml"))
    return RunConfig.from_dict(
        {
            "agent": agent_preset(agent),
            "network": network,
            "env": {"game": args.game, "protocol": "machado", "num_envs": args.num_envs},
            "replay": {"capacity": 50_000},
            "trainer": {
                "total_steps": args.warmup,
                "learning_starts": args.warmup,
                "device": args.device,
                "precision": precision,
                "compile": compile_mode,
                "overlap": overlap,
                "eval_period": 0,
                "checkpoint_period": 0,
                "save_replay": False,
                "update_period": 4,
            },
            "logger": {"tensorboard": False, "progress": False, "distribution_states": 0},
        }
    )


def _ms(fn, reps: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - start) / reps * 1e3


def bench(
    agent: str, precision: str, args: argparse.Namespace, *, compile_mode: str, overlap: bool
) -> dict[str, float]:
    cfg = make_config(agent, precision, args, compile_mode=compile_mode, overlap=overlap)
    with TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, tmp)
        trainer.run()  # warm-up: fills the buffer with random play
        n = cfg.env.num_envs
        env, agent_obj, replay = trainer.env, trainer.agent, trainer.replay
        obs, _ = env.reset()
        rng = np.random.default_rng(0)
        env_ms = _ms(lambda: env.step(rng.integers(0, env.num_actions, n)), 300) / n
        act_ms = _ms(lambda: agent_obj.act(obs, 0.01), 100) / n
        zeros = np.zeros(n)
        add_ms = (
            _ms(lambda: replay.add(obs, zeros.astype(np.int64), zeros, zeros > 1, zeros > 1), 300)
            / n
        )

        def update() -> None:
            agent_obj.learn(replay.sample(32))

        update_ms = _ms(update, args.updates)
        per_step = env_ms + act_ms + add_ms + update_ms / cfg.trainer.update_period
        bound = 1e3 / per_step
        cfg.trainer.total_steps = trainer.agent_step + args.steps
        start = time.perf_counter()
        trainer.run()
        loop = args.steps / (time.perf_counter() - start)
        trainer.close()
    return {
        "env": env_ms,
        "act": act_ms,
        "add": add_ms,
        "update": update_ms,
        "bound": bound,
        "loop": loop,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=list(AGENT_NAMES))
    p.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    p.add_argument("--game", default="breakout")
    p.add_argument("--device", default="auto")
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument(
        "--compile",
        nargs="?",
        const="update",
        choices=["update", "graphs"],
        help="also measure compiled variants: update (default) or graphs (+ CUDA graphs)",
    )
    p.add_argument("--overlap", choices=["on", "off", "both"], default="both")
    p.add_argument("--warmup", type=int, default=1000, help="random warm-up transitions")
    p.add_argument("--steps", type=int, default=2000, help="timed training-loop agent steps")
    p.add_argument("--updates", type=int, default=50, help="timed updates for the bound")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if args.device == "auto" and torch.cuda.is_available() else args.device
    print(
        f"device={dev} torch={torch.__version__} threads={torch.get_num_threads()} "
        f"game={args.game} num_envs={args.num_envs}"
    )
    print(
        "| agent | precision | overlap | env ms/step | act ms | add ms | update ms "
        "| bound steps/s | loop steps/s | loop/bound | 200M frames (h) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    overlaps = {"on": [True], "off": [False], "both": [False, True]}[args.overlap]
    variants = [(p, "off") for p in args.precision]
    if args.compile:
        variants += [(p, args.compile) for p in args.precision]
    for agent in args.agents:
        for precision, mode in variants:
            for overlap in overlaps:
                r = bench(agent, precision, args, compile_mode=mode, overlap=overlap)
                label = precision + ("" if mode == "off" else f"+{mode}")
                print(
                    f"| {agent} | {label} | {'on' if overlap else 'off'} | {r['env']:.2f} "
                    f"| {r['act']:.2f} | {r['add']:.3f} | {r['update']:.1f} | {r['bound']:.0f} "
                    f"| {r['loop']:.0f} | {r['loop'] / r['bound']:.2f} "
                    f"| {50_000_000 / r['loop'] / 3600:.1f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
