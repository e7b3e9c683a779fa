"""Training speed of distrl-agents next to Tianshou, side by side in one run on this machine.

    python scripts/bench_peers.py [--agents c51 qrdqn iqn fqf dqn] [--steps 1000] [--repeats 1]
                                  [--as-shipped c51|all|none]

On first use this creates a virtual environment for the peer under ``.cache/bench_peers/`` (in
the repository, ignored by git) with the pinned versions below: torch is installed first and
pinned, so that Tianshou does not replace it with another build. Then, for each agent, it runs
ours and the peer one after the other (alternating, ``--repeats`` times), each in a fresh
process, and prints a table of steady agent steps/s and the ratio ours / peer, with each side's
milliseconds per update (replay sample + gradient step, timed inside the running loop) and the
ratio ours / peer would reach if everything in our loop but the updates cost nothing.

Matched (both sides):
  Breakout, one env, CPU; 84x84 grey frames, 4 stacked, frame skip 4 with max-pooling, no sticky
  actions, up to 30 no-op starts, FIRE on reset, life loss ends the episode for learning, rewards
  clipped to [-1, 1] (ours: ``env.protocol=nature`` with ``+env.overrides.use_fire_reset=true``,
  since our protocol presses no FIRE; Tianshou: ``wrap_deepmind`` on
  ``BreakoutNoFrameskip-v4``); batch 32, one update per 4 agent steps, 1,000 random warm-up
  transitions, a 10,000-transition replay buffer storing single frames, 1-step returns,
  gamma 0.99; the Nature torso; each agent's paper preset (distrl-agents' ``configs/agent``):
  C51 51 atoms in [-10, 10], QR-DQN 200 quantiles, IQN N = N' = 64 and K = 32 with 64 cosine
  features, FQF 32 fractions, their optimisers, learning rates and epsilons, no double DQN,
  target sync every 10,000 agent steps (2,500 updates); epsilon 1.0 -> 0.01 over 1M steps after
  the warm-up; the same torch, ale-py and gymnasium versions; the rate is measured after
  ``--skip`` training steps, over ``--steps`` steps, from inside the running loop.

Not matched (cannot be, or are the frameworks' own choices):
  ours runs at its defaults (``precision=auto``, ``trainer.overlap``, thread counts, fused Adam;
  ``distrl-train`` does this); Tianshou at its own (fp32, torch's default thread count). The games
  are stepped by ale-py's C++ vector env on our side and by gymnasium's Python wrappers (Tianshou's
  ``wrap_deepmind``, which uses OpenCV) on its side; the Tianshou env runs in-process
  (``DummyVectorEnv``, no subprocess round trip). Tianshou's FQF/IQN heads are its own
  (``FullQuantileFunction``, ``ImplicitQuantileNetwork``), not the same code as ours. Tianshou
  needs NumPy < 2.3 (its Atari wrapper builds ``np.dtype(np.integer)``, an error from NumPy 2.3),
  so its environment has NumPy 2.2.6 where ours may have a newer one.

Tianshou as shipped scans the whole replay buffer for NaNs after every collect step
(``OffPolicyTrainer._collect_training_data`` calls ``buffer.hasnull()``): with a 10k buffer that
dominates its loop. The table shows Tianshou with that scan switched off (the buffer's
``hasnull`` returns False) as the peer the ratio is taken against, and, for ``--as-shipped``
agents, a row as shipped too.

Absolute rates depend on the machine and its load; the ratios are what this script is for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "bench_peers"
# Versions verified with this script. torch first, from the same version as ours; NumPy < 2.3
# for Tianshou's Atari wrapper; ale-py and gymnasium as ours.
TIANSHOU = "2.0.1"
PEER_REQUIREMENTS = [
    ["torch==2.13.0"],
    [
        f"tianshou=={TIANSHOU}",
        "torch==2.13.0",
        "numpy==2.2.6",
        "gymnasium==1.4.0",
        "ale-py==0.12.1",
        "opencv-python-headless==5.0.0.93",
    ],
]
AGENTS = ["c51", "qrdqn", "iqn", "fqf", "dqn"]

OURS_CODE = r"""
import json, sys, time
from tempfile import TemporaryDirectory
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
import torch
from distrl_agents.envs.games import resolve_game
from distrl_agents.training.config import RunConfig
from distrl_agents.training.loop import Trainer

agent, game, warmup, skip, steps, buffer = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
overrides = [
    f"agent={agent}", f"env.game={game}", "env.protocol=nature",
    "+env.overrides.use_fire_reset=true",  # as Tianshou's wrap_deepmind (FireResetEnv)
    f"replay.capacity={buffer}", f"trainer.learning_starts={warmup}",
    f"trainer.total_steps={warmup + skip}", "trainer.eval_period=0",
    "trainer.checkpoint_period=0", "trainer.save_replay=false",
    "logger.tensorboard=false", "logger.progress=false", "logger.distribution_states=0",
] + sys.argv[7:]
with initialize_config_module("distrl_agents.configs", version_base="1.3"):
    raw = OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)
raw.pop("resume", None)
raw["env"]["game"] = resolve_game(raw["env"]["game"])
cfg = RunConfig.from_dict(raw)
with TemporaryDirectory() as tmp:
    trainer = Trainer(cfg, tmp)
    trainer.run()  # random warm-up, then `skip` training steps (start-up not timed)
    cfg.trainer.total_steps = trainer.agent_step + steps
    spent = [0.0, 0]  # seconds in gradient updates (replay sample included), updates
    learn_due = trainer._learn_due

    def timed_learn_due(log):
        before, t0 = trainer.update_credit, time.perf_counter()
        learn_due(log)
        spent[0] += time.perf_counter() - t0
        spent[1] += int(before) - int(trainer.update_credit)

    trainer._learn_due = timed_learn_due
    start = time.perf_counter()
    trainer.run()
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    threads = torch.get_num_threads()  # the run's count (close() restores the previous one)
    trainer.close()
print(json.dumps({"framework": "distrl-agents", "agent": agent, "steps_per_s": rate,
                  "precision": trainer.agent.spec.get("precision"),
                  "act_precision": trainer.agent.spec.get("act_precision"),
                  "threads": threads, "update_ms": 1e3 * spent[0] / max(spent[1], 1),
                  "updates": spent[1], "update_share": spent[0] / elapsed}), flush=True)
"""


def peer_python() -> Path:
    """The Tianshou virtual environment's Python, created on first use."""
    env_dir = CACHE / f"venv-tianshou-{TIANSHOU}"
    python = env_dir / "bin" / "python"
    marker = env_dir / "installed.json"
    if marker.exists() and json.loads(marker.read_text()) == PEER_REQUIREMENTS:
        return python
    print(f"installing Tianshou {TIANSHOU} in {env_dir.relative_to(ROOT)} ...", flush=True)
    venv.create(env_dir, with_pip=True, clear=True)
    for reqs in PEER_REQUIREMENTS:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *reqs],
            check=True,
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
    marker.write_text(json.dumps(PEER_REQUIREMENTS))
    return python


def run_json(cmd: list[str], timeout: float) -> dict:
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({out.returncode}):\n{tail}")
    return json.loads(lines[-1])


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "")
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model or platform.processor()}, {cpus} CPUs, {platform.system()}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", nargs="+", default=AGENTS, choices=AGENTS)
    p.add_argument("--game", default="Breakout")
    p.add_argument("--warmup", type=int, default=1000, help="random warm-up transitions")
    p.add_argument("--skip", type=int, default=200, help="training steps before timing")
    p.add_argument("--steps", type=int, default=1000, help="timed agent steps per run")
    p.add_argument("--buffer", type=int, default=10_000, help="replay capacity")
    p.add_argument("--repeats", type=int, default=1, help="alternating runs per side and agent")
    p.add_argument(
        "--as-shipped",
        choices=["c51", "all", "none"],
        default="c51",
        help="also time Tianshou with its per-collect NaN scan (slow: fewer steps)",
    )
    p.add_argument("--shipped-steps", type=int, default=200)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--ours", nargs="*", default=[], help="extra distrl-train overrides")
    args = p.parse_args()

    peer = peer_python()
    common = [str(args.warmup), str(args.skip)]
    print(
        f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}; "
        f"{args.game}, 1 env, batch 32, 1 update / 4 steps, warm-up {args.warmup}, "
        f"buffer {args.buffer}, {args.steps} timed steps after {args.skip}, "
        f"{args.repeats} alternating run(s) per side",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    info: dict[str, dict] = {}
    for agent in args.agents:
        r = results.setdefault(
            agent,
            {"ours": [], "peer": [], "shipped": [], "ours_ms": [], "peer_ms": [], "bound": []},
        )
        for _ in range(args.repeats):
            ours = run_json(
                [sys.executable, "-c", OURS_CODE, agent, args.game.lower(), *common,
                 str(args.steps), str(args.buffer), *args.ours],
                args.timeout,
            )  # fmt: skip
            r["ours"].append(ours["steps_per_s"])
            info[agent] = ours
            peer_res = run_json(
                [str(peer), "-W", "ignore::DeprecationWarning", "scripts/peer_tianshou.py",
                 "--agent", agent, "--game", args.game, "--warmup", str(args.warmup),
                 "--skip", str(args.skip), "--steps", str(args.steps),
                 "--buffer", str(args.buffer), "--nan-scan", "off"],
                args.timeout,
            )  # fmt: skip
            r["peer"].append(peer_res["steps_per_s"])
            r["ours_ms"].append(ours["update_ms"])
            r["peer_ms"].append(peer_res["update_ms"])
            # Ours / peer if everything of our loop but the updates cost nothing.
            r["bound"].append(ours["steps_per_s"] / peer_res["steps_per_s"] / ours["update_share"])
            print(
                f"#   {agent}: ours {ours['steps_per_s']:.1f} (precision {ours['precision']}, "
                f"acting {ours['act_precision']}, {ours['threads']} torch threads), "
                f"tianshou {peer_res['steps_per_s']:.1f} agent steps/s; update ms ours "
                f"{ours['update_ms']:.1f} ({ours['update_share']:.0%} of the loop), tianshou "
                f"{peer_res['update_ms']:.1f} ({peer_res['update_share']:.0%})",
                flush=True,
            )
        if args.as_shipped == "all" or args.as_shipped == agent:
            shipped = run_json(
                [str(peer), "-W", "ignore::DeprecationWarning", "scripts/peer_tianshou.py",
                 "--agent", agent, "--game", args.game, "--warmup", str(args.warmup),
                 "--skip", "20", "--steps", str(args.shipped_steps),
                 "--buffer", str(args.buffer), "--nan-scan", "on"],
                args.timeout,
            )  # fmt: skip
            r["shipped"].append(shipped["steps_per_s"])
            print(
                f"#   {agent}: tianshou as shipped {shipped['steps_per_s']:.1f} agent steps/s",
                flush=True,
            )

    def fmt(values: list[float]) -> str:
        if not values:
            return "-"
        if len(values) == 1:
            return f"{values[0]:.1f}"
        return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"

    print()
    print(
        f"| agent | ours steps/s | Tianshou {TIANSHOU} steps/s (NaN scan off) "
        "| ours / Tianshou | update ms ours / Tianshou | ours / Tianshou if only our updates "
        "cost time | Tianshou as shipped steps/s | ours / as shipped |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for agent, r in results.items():
        ratios = [o / t for o, t in zip(r["ours"], r["peer"])]
        shipped_ratio = (
            f"{statistics.median(r['ours']) / r['shipped'][0]:.0f}x" if r["shipped"] else "-"
        )
        print(
            f"| {agent} | {fmt(r['ours'])} | {fmt(r['peer'])} | "
            + (
                f"{statistics.median(ratios):.2f}x"
                + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else "")
            )
            + f" | {statistics.median(r['ours_ms']):.1f} / {statistics.median(r['peer_ms']):.1f}"
            + f" | {statistics.median(r['bound']):.2f}x"
            + f" | {fmt(r['shipped'])} | {shipped_ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
