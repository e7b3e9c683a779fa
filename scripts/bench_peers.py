"""Training speed of distrl-agents next to its peers, side by side in one run on this machine.

    python scripts/bench_peers.py [--agents c51 qrdqn iqn fqf dqn] [--steps 1000] [--repeats 1]
                                  [--as-shipped c51|all|none]
    python scripts/bench_peers.py --preset atari100k --kaixhin CHECKOUT [--game crazy_climber]
                                  [--steps 1000] [--skip 200] [--threads 1] [--repeats 1]

Two presets: ``tianshou`` (the default; below) and ``atari100k``, data-efficient Rainbow (DER)
against Kaixhin/Rainbow, the PyTorch DER most Atari-100k papers started from (the end of this
text).

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

``--preset atari100k``: ours with ``experiment=atari100k agent=c51`` (our DER preset), Kaixhin's
``main.py`` from the checkout given as ``--kaixhin`` (not installed: clone it yourself) with its
README's data-efficient command line, run by ``scripts/peer_kaixhin.py`` on our own Python (same
torch, NumPy and ale-py; ``atari_py``, which no longer installs, is a shim over ale-py; OpenCV is
installed with ``pip --target`` under ``.cache/bench_peers/kaixhin-site`` on first use). Each
side runs ``--warmup`` (1,600) steps before learning, ``--skip`` learning steps, then
``--steps`` timed steps, alternating, each in a fresh process.

Matched (atari100k): the game (crazy_climber by default), one env, CPU, fp32, ``--threads``
torch threads each (1; Kaixhin's OpenCV too); no sticky actions, up to 30 no-op starts, no FIRE
on reset, life loss ends the episode for learning, 84x84 grey frames, 4 stacked, frame skip 4
with max-pooling over the last two, rewards clipped to [-1, 1]; DER's network (conv 32x5x5
stride 5, 64x5x5 stride 5, 256 hidden, dueling, noisy nets sigma 0.1, 51 atoms in [-10, 10]),
n = 20 returns, gamma 0.99, double Q-learning, proportional prioritized replay (alpha 0.5,
beta 0.4 -> 1), a 100,000-transition replay of single frames, learning from step 1,600, one
update per agent step, batch 32, Adam lr 1e-4, eps 1.5e-4, gradient norm clipped to 10, target
sync every 2,000 steps, no epsilon-greedy (noisy nets explore), no evaluation or checkpoint in
the run; the rate is measured over the learning phase only, from inside each running loop.

Not matched (atari100k): each framework's own code for everything: its games (ours ale-py's C++
vector env, whose one game thread steps the game while the update runs: ``trainer.overlap``, our
default; Kaixhin's ``atari_py``-style ``ALEInterface`` calls, four per step, and
``cv2.resize`` in Python, in the loop's thread); its replay (ours stores frames in a uint8 ring
with a sum tree; Kaixhin's a NumPy structured array with a NumPy sum tree, stacking 4 + 20
frames per sample and converting them to float); its update (Kaixhin: three separate forward
passes, ``index_add_`` projection; ours: fused Adam, its own projection). Warm-up: ours plays
the 1,600 steps uniformly at random, Kaixhin's acts with the noisy network from the first step
and first fills a 500-step validation memory (neither timed). The runs are cut to the timed
window, so both anneal beta over the shortened run (the same work per step). Seeds differ (ours
0, Kaixhin 123), so the episodes do.

The memory allocator: our process raises glibc's mmap and trim thresholds at start-up
(``tune_host_allocator``), so the multi-MB tensors of each update are reused from the heap;
Kaixhin's runs with glibc's defaults, under which they are mapped and page-faulted anew, which
costs it much of its update and replay sample time. ``--peer-malloc tuned`` gives its process the
same thresholds through glibc's environment variables (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``; its code unchanged), for the comparison at equal allocators.

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
# Kaixhin/Rainbow runs on our own Python (torch, NumPy, ale-py); it needs OpenCV besides.
KAIXHIN_REQUIREMENTS = ["opencv-python-headless==5.0.0.93"]

OURS_CODE = r"""
import json, sys, time
from tempfile import TemporaryDirectory
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf
import torch
from distrl_agents.envs.games import resolve_game
from distrl_agents.training.config import RunConfig
from distrl_agents.training.loop import Trainer

warmup, skip, steps = map(int, sys.argv[1:4])
overrides = [
    f"trainer.learning_starts={warmup}", f"trainer.total_steps={warmup + skip}",
    "trainer.eval_period=0", "trainer.checkpoint_period=0", "trainer.save_replay=false",
    "logger.tensorboard=false", "logger.progress=false", "logger.distribution_states=0",
] + sys.argv[4:]  # the preset's overrides (agent, game, ...), then the user's
with initialize_config_module("distrl_agents.configs", version_base="1.3"):
    raw = OmegaConf.to_container(compose("train", overrides=overrides), resolve=True)
raw.pop("resume", None)
raw["env"]["game"] = resolve_game(raw["env"]["game"])
cfg = RunConfig.from_dict(raw)
with TemporaryDirectory() as tmp:
    trainer = Trainer(cfg, tmp)
    trainer.run()  # random warm-up, then `skip` training steps (start-up not timed)
    cfg.trainer.total_steps = trainer.agent_step + steps
    spent = [0.0, 0, 0.0]  # seconds in gradient updates (replay sample included), updates,
    # seconds in replay samples
    learn_due, sample = trainer._learn_due, trainer.replay.sample

    def timed_sample(*a, **k):
        t0 = time.perf_counter()
        try:
            return sample(*a, **k)
        finally:
            spent[2] += time.perf_counter() - t0

    def timed_learn_due(log):
        before, t0 = trainer.update_credit, time.perf_counter()
        learn_due(log)
        spent[0] += time.perf_counter() - t0
        spent[1] += int(before) - int(trainer.update_credit)

    trainer._learn_due = timed_learn_due
    trainer.replay.sample = timed_sample
    start = time.perf_counter()
    trainer.run()
    elapsed = time.perf_counter() - start
    rate = steps / elapsed
    threads = torch.get_num_threads()  # the run's count (close() restores the previous one)
    trainer.close()
print(json.dumps({"framework": "distrl-agents", "agent": cfg.agent["name"], "steps_per_s": rate,
                  "precision": trainer.agent.spec.get("precision"),
                  "act_precision": trainer.agent.spec.get("act_precision"),
                  "threads": threads, "update_ms": 1e3 * spent[0] / max(spent[1], 1),
                  "sample_ms": 1e3 * spent[2] / max(spent[1], 1),
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


def kaixhin_site() -> Path:
    """A folder with OpenCV for Kaixhin/Rainbow's ``env.py`` (``pip --target``, no dependencies:
    the peer runs on our Python, torch, NumPy and ale-py), filled on first use."""
    site = CACHE / "kaixhin-site"
    marker = site / "installed.json"
    if marker.exists() and json.loads(marker.read_text()) == KAIXHIN_REQUIREMENTS:
        return site
    print(
        f"installing {' '.join(KAIXHIN_REQUIREMENTS)} in {site.relative_to(ROOT)} ...", flush=True
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--upgrade",
         "--target", str(site), *KAIXHIN_REQUIREMENTS],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )  # fmt: skip
    marker.write_text(json.dumps(KAIXHIN_REQUIREMENTS))
    return site


def ours_overrides(preset: str, agent: str, game: str, buffer: int, threads: int) -> list[str]:
    """Our side's overrides for a preset (before the user's ``--ours``)."""
    if preset == "tianshou":
        # The bare groups (no experiment preset: the default one is Atari 100k / DER), i.e. the
        # agent's paper preset with the default loop; Breakout with FIRE on reset as
        # Tianshou's wrap_deepmind (FireResetEnv).
        return [
            "~experiment", f"agent={agent}", f"env.game={game}", "env.protocol=nature",
            "+env.overrides.use_fire_reset=true", f"replay.capacity={buffer}",
        ]  # fmt: skip
    # atari100k: data-efficient Rainbow as Kaixhin's README runs it, held to fp32 on the CPU with
    # `threads` torch threads (ale-py's one game thread besides, as always on our side).
    return [
        "experiment=atari100k", f"agent={agent}", f"env.game={game}", "env.num_envs=1",
        f"replay.capacity={buffer}", "trainer.device=cpu", "trainer.precision=fp32",
        "trainer.compile=off", f"trainer.torch_threads={threads}",
    ]  # fmt: skip


# glibc's thresholds as distrl_agents.training.device.tune_host_allocator sets them in our
# process (mallopt), given to the peer's process through glibc's environment variables.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(256 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}


def ours_command(warmup: int, skip: int, steps: int, overrides: list[str]) -> list[str]:
    return [sys.executable, "-c", OURS_CODE, str(warmup), str(skip), str(steps), *overrides]


def kaixhin_command(
    checkout: str | Path, game: str, warmup: int, skip: int, steps: int, buffer: int,
    threads: int, site: str | Path,
) -> list[str]:  # fmt: skip
    return [
        sys.executable, "scripts/peer_kaixhin.py", "--kaixhin", str(checkout), "--game", game,
        "--learn-start", str(warmup), "--skip", str(skip), "--steps", str(steps),
        "--memory", str(buffer), "--threads", str(threads), "--site", str(site),
    ]  # fmt: skip


def tianshou_command(
    peer: str | Path, agent: str, game: str, warmup: int, skip: int, steps: int, buffer: int,
    nan_scan: str,
) -> list[str]:  # fmt: skip
    return [
        str(peer), "-W", "ignore::DeprecationWarning", "scripts/peer_tianshou.py",
        "--agent", agent, "--game", game, "--warmup", str(warmup), "--skip", str(skip),
        "--steps", str(steps), "--buffer", str(buffer), "--nan-scan", nan_scan,
    ]  # fmt: skip


def last_json(stdout: str) -> dict | None:
    """The last JSON line a run printed (each side prints one at its end)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def run_json(cmd: list[str], timeout: float, env: dict[str, str] | None = None) -> dict:
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False,
        env=None if env is None else {**os.environ, **env},
    )  # fmt: skip
    result = last_json(out.stdout)
    if out.returncode != 0 or result is None:
        tail = "\n".join((out.stdout + out.stderr).splitlines()[-15:])
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({out.returncode}):\n{tail}")
    return result


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if "model name" in ln), "")
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    flags = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(
                next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
            )
    except OSError:
        pass
    bf16 = [name for flag, name in (("avx512_bf16", "AVX-512 bf16"), ("amx_bf16", "AMX bf16"))
            if flag in flags]  # fmt: skip
    units = ", ".join(bf16) if bf16 else "no bf16 units"
    return f"{model or platform.processor()}, {cpus} CPUs, {units}, {platform.system()}"


def fmt(values: list[float]) -> str:
    """Median (min-max) of a side's runs."""
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def fmt_ratio(values: list[float]) -> str:
    text = f"{statistics.median(values):.2f}x"
    return text + (f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")


def checkout_commit(path: str | Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return out.stdout.strip() or "not a git checkout"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--preset",
        choices=["tianshou", "atari100k"],
        default="tianshou",
        help="tianshou: the five agents' paper presets against Tianshou; atari100k: "
        "data-efficient Rainbow (experiment=atari100k agent=c51) against Kaixhin/Rainbow",
    )
    p.add_argument("--kaixhin", default=None, help="a checkout of Kaixhin/Rainbow (atari100k)")
    p.add_argument("--agents", nargs="+", default=None, choices=AGENTS)
    p.add_argument("--game", default=None, help="tianshou: Breakout; atari100k: crazy_climber")
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="transitions before learning (tianshou: 1000 random; atari100k: 1600, DER's)",
    )
    p.add_argument("--skip", type=int, default=200, help="training steps before timing")
    p.add_argument("--steps", type=int, default=1000, help="timed agent steps per run")
    p.add_argument(
        "--buffer", type=int, default=None, help="replay capacity (10,000; atari100k 100,000)"
    )
    p.add_argument("--threads", type=int, default=1, help="atari100k: torch threads each side")
    p.add_argument(
        "--peer-malloc",
        choices=["default", "tuned"],
        default="default",
        help="atari100k: glibc's allocator thresholds in Kaixhin's process; tuned = the ones "
        "our process sets itself (tune_host_allocator), through MALLOC_*_THRESHOLD_",
    )
    p.add_argument("--repeats", type=int, default=1, help="alternating runs per side and agent")
    p.add_argument(
        "--as-shipped",
        choices=["c51", "all", "none"],
        default="c51",
        help="tianshou: also time it with its per-collect NaN scan (slow: fewer steps)",
    )
    p.add_argument("--shipped-steps", type=int, default=200)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    p.add_argument("--ours", nargs="*", default=[], help="extra distrl-train overrides")
    args = p.parse_args()
    if args.preset == "atari100k":
        atari100k(args, p)
    else:
        tianshou(args)


def atari100k(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Data-efficient Rainbow, ours against Kaixhin/Rainbow's main.py (scripts/peer_kaixhin.py)."""
    if not args.kaixhin or not (Path(args.kaixhin) / "main.py").exists():
        parser.error("--preset atari100k needs --kaixhin: a checkout of Kaixhin/Rainbow")
    if args.agents not in (None, ["c51"]):
        parser.error("--preset atari100k runs data-efficient Rainbow: agent c51 only")
    game = args.game or "crazy_climber"
    warmup = 1600 if args.warmup is None else args.warmup
    buffer = 100_000 if args.buffer is None else args.buffer
    site = kaixhin_site()
    print(
        f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}; data-efficient "
        f"Rainbow on {game}, 1 env, CPU, fp32, {args.threads} torch thread(s) each, batch 32, "
        f"1 update / step, n = 20, learning from step {warmup}, buffer {buffer}, "
        f"{args.steps} timed steps after {args.skip}, {args.repeats} alternating run(s) per "
        f"side; Kaixhin/Rainbow {checkout_commit(args.kaixhin)}, its glibc allocator "
        f"thresholds {args.peer_malloc}",
        flush=True,
    )
    r: dict[str, list[float]] = {
        k: [] for k in ("ours", "peer", "ours_ms", "peer_ms", "ours_sample", "peer_sample",
                        "ours_share", "peer_share", "bound")
    }  # fmt: skip
    overrides = ours_overrides("atari100k", "c51", game, buffer, args.threads) + args.ours
    for _ in range(args.repeats):
        ours = run_json(ours_command(warmup, args.skip, args.steps, overrides), args.timeout)
        peer = run_json(
            kaixhin_command(args.kaixhin, game, warmup, args.skip, args.steps, buffer,
                            args.threads, site),
            args.timeout,
            TUNED_MALLOC if args.peer_malloc == "tuned" else None,
        )  # fmt: skip
        for side, res in (("ours", ours), ("peer", peer)):
            r[side].append(res["steps_per_s"])
            r[f"{side}_ms"].append(res["update_ms"])
            r[f"{side}_sample"].append(res["sample_ms"])
            r[f"{side}_share"].append(res["update_share"])
        r["bound"].append(ours["steps_per_s"] / peer["steps_per_s"] / ours["update_share"])
        print(
            f"#   ours {ours['steps_per_s']:.1f} (precision {ours['precision']}, acting "
            f"{ours['act_precision']}, {ours['threads']} torch threads), Kaixhin "
            f"{peer['steps_per_s']:.1f} ({peer['threads']} torch threads) agent steps/s; "
            f"update ms ours {ours['update_ms']:.1f} (replay sample {ours['sample_ms']:.1f}; "
            f"{ours['update_share']:.0%} of the loop), Kaixhin {peer['update_ms']:.1f} (replay "
            f"sample {peer['sample_ms']:.1f}; {peer['update_share']:.0%}); Kaixhin's acting "
            f"{peer['act_ms']:.1f} ms, game step {peer['env_ms']:.1f} ms per agent step",
            flush=True,
        )
    ratios = [o / k for o, k in zip(r["ours"], r["peer"])]
    print()
    print(
        "| agent | ours steps/s | Kaixhin/Rainbow steps/s | ours / Kaixhin "
        "| update ms, ours / Kaixhin | of which replay sample ms, ours / Kaixhin "
        "| update's share of the loop, ours / Kaixhin | ours / Kaixhin if only our updates "
        "cost time |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")

    def med(key: str) -> float:
        return statistics.median(r[key])

    print(
        f"| c51 (DER) | {fmt(r['ours'])} | {fmt(r['peer'])} | {fmt_ratio(ratios)} "
        f"| {med('ours_ms'):.1f} / {med('peer_ms'):.1f} "
        f"| {med('ours_sample'):.1f} / {med('peer_sample'):.1f} "
        f"| {med('ours_share'):.0%} / {med('peer_share'):.0%} | {med('bound'):.2f}x |",
        flush=True,
    )


def tianshou(args: argparse.Namespace) -> None:
    """The five agents' paper presets, ours against Tianshou (scripts/peer_tianshou.py)."""
    agents = args.agents or AGENTS
    game = args.game or "Breakout"
    warmup = 1000 if args.warmup is None else args.warmup
    buffer = 10_000 if args.buffer is None else args.buffer
    peer = peer_python()
    print(
        f"# {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {machine()}; "
        f"{game}, 1 env, batch 32, 1 update / 4 steps, warm-up {warmup}, "
        f"buffer {buffer}, {args.steps} timed steps after {args.skip}, "
        f"{args.repeats} alternating run(s) per side",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {}
    for agent in agents:
        r = results.setdefault(
            agent,
            {"ours": [], "peer": [], "shipped": [], "ours_ms": [], "peer_ms": [], "bound": []},
        )
        overrides = ours_overrides("tianshou", agent, game.lower(), buffer, 0) + args.ours
        for _ in range(args.repeats):
            ours = run_json(ours_command(warmup, args.skip, args.steps, overrides), args.timeout)
            r["ours"].append(ours["steps_per_s"])
            peer_res = run_json(
                tianshou_command(peer, agent, game, warmup, args.skip, args.steps, buffer, "off"),
                args.timeout,
            )
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
                tianshou_command(peer, agent, game, warmup, 20, args.shipped_steps, buffer, "on"),
                args.timeout,
            )
            r["shipped"].append(shipped["steps_per_s"])
            print(
                f"#   {agent}: tianshou as shipped {shipped['steps_per_s']:.1f} agent steps/s",
                flush=True,
            )

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
            f"| {agent} | {fmt(r['ours'])} | {fmt(r['peer'])} | {fmt_ratio(ratios)}"
            + f" | {statistics.median(r['ours_ms']):.1f} / {statistics.median(r['peer_ms']):.1f}"
            + f" | {statistics.median(r['bound']):.2f}x"
            + f" | {fmt(r['shipped'])} | {shipped_ratio} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
