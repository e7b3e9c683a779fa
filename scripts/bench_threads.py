"""How to spread a grid of Atari-100k runs over this machine's cores: threads per run, runs at once.

    python scripts/bench_threads.py [--game crazy_climber] [--steps 1500] [--rounds 2]
                                    [--scenarios alone-all one-per-core ...]
                                    [--compile off update] [--untimed 100]

Each scenario starts fresh ``experiment=atari100k`` (C51, DER settings, fp32) trainings in
their own processes; each plays the 1,600 random warm-up steps and ``--untimed`` learning steps
(where ``--compile update`` compiles), then times ``--steps`` learning steps (one update per
agent step) and prints its agent steps/s. With several ``--compile`` values every scenario runs
once per value. Scenarios (C = the CPUs here):

* ``alone-all``: one run with C threads, nothing else running: ``--jobs 1``;
* ``alone-one``: one run with one thread, nothing else running;
* ``one-per-core``: C runs with one thread each, at once: ``--jobs C``;
* ``all-busy``: one run with C threads beside a busy process (another 1-thread training);
* ``all-busy-passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep
  instead of spinning); ``alone-all-passive`` and ``one-per-core-passive`` likewise;
* ``one-busy``: one run with one thread beside the same busy process;
* ``oversubscribed``: C runs with C threads each (what ``--jobs C`` with torch's default
  thread count would do).

The table gives each scenario's agent steps/s per run and in all (the grid's throughput: the
scenarios run the same runs, so the one with the highest total finishes a grid soonest), and the
hours a grid of 102 Atari-100k runs (26 games x 3 seeds of C51 + 6 games x 4 agents) would take
at that rate. Rounds alternate the scenarios. Absolute rates depend on the machine and its load;
compare the scenarios of one invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

GRID_RUNS = 102
RUN_STEPS = 100_000
WARMUP = 1600  # experiment=atari100k's learning_starts


def worker(args: argparse.Namespace) -> None:
    """One training: warm-up, then ``--steps`` timed learning steps; prints one JSON line."""
    from distrl_agents.cli.compose import compose_raw_config
    from distrl_agents.training.config import RunConfig
    from distrl_agents.training.loop import Trainer

    raw = compose_raw_config(
        [
            "experiment=atari100k",
            "agent=c51",
            f"env.game={args.game}",
            f"seed={args.seed}",
            "trainer.precision=fp32",
            f"trainer.compile={args.compile_mode}",
            f"trainer.torch_threads={args.threads}",
            "trainer.eval_period=0",
            "trainer.checkpoint_period=0",
            "trainer.save_replay=false",
            "logger.tensorboard=false",
            "logger.progress=false",
        ]
    )
    raw["trainer"]["total_steps"] = WARMUP
    with TemporaryDirectory() as tmp:
        trainer = Trainer(RunConfig.from_dict(raw), tmp)
        trainer.run()  # random warm-up
        # Untimed learning steps first: the first updates compile (compile=update) and grow the
        # allocator's pools, once per run rather than once per ``--steps``.
        trainer.cfg.trainer.total_steps = WARMUP + args.untimed
        trainer.run()
        trainer.cfg.trainer.total_steps = WARMUP + args.untimed + args.steps
        start = time.perf_counter()
        trainer.run()
        seconds = time.perf_counter() - start
        trainer.close()
    print(json.dumps({"sps": args.steps / seconds, "seconds": seconds}), flush=True)


def _spawn(
    args: argparse.Namespace,
    threads: int,
    seed: int,
    env: dict[str, str],
    compile_mode: str = "off",
):
    cmd = [sys.executable, __file__, "--worker", "--threads", str(threads), "--seed", str(seed)]
    cmd += ["--game", args.game, "--steps", str(args.steps), "--untimed", str(args.untimed)]
    cmd += ["--compile-mode", compile_mode]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)


def _busy(args: argparse.Namespace, env: dict[str, str]):
    """The busy neighbour: a 1-thread training with a long run, killed when the measured end."""
    cmd = [sys.executable, __file__, "--worker", "--threads", "1", "--seed", "99"]
    cmd += ["--game", args.game, "--steps", str(10 * args.steps), "--untimed", "0"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, env=env)


def scenario(
    name: str, args: argparse.Namespace, cpus: int, compile_mode: str = "off"
) -> list[float]:
    """Agent steps/s of each measured run of scenario ``name`` (``trainer.compile=compile_mode``)."""
    env = dict(os.environ)
    runs = {"one-per-core": (cpus, 1), "oversubscribed": (cpus, cpus), "one-busy": (1, 1)}
    runs["alone-one"] = (1, 1)
    base = name.removesuffix("-passive")
    count, threads = runs.get(base, (1, cpus))
    if name.endswith("-passive"):
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy = _busy(args, dict(os.environ)) if base.endswith("busy") else None
    if busy is not None:
        time.sleep(args.busy_lead)  # let the neighbour get past its start-up
    procs = [_spawn(args, threads, seed, env, compile_mode) for seed in range(count)]
    rates = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"bench_threads: a {name} run failed (exit {proc.returncode})")
        rates.append(json.loads(out.strip().splitlines()[-1])["sps"])
    if busy is not None:
        busy.kill()
        busy.wait()
    return rates


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game", default="crazy_climber")
    p.add_argument("--steps", type=int, default=1500, help="timed learning steps per run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument(
        "--scenarios",
        nargs="+",
        default=[
            "alone-all",
            "one-per-core",
            "all-busy",
            "all-busy-passive",
            "one-busy",
            "oversubscribed",
        ],
    )
    p.add_argument(
        "--compile",
        nargs="+",
        default=["off"],
        choices=["off", "update"],
        help="trainer.compile of the measured runs; each scenario runs once per value",
    )
    p.add_argument(
        "--untimed", type=int, default=100, help="learning steps before the timed ones (compiling)"
    )
    p.add_argument("--busy-lead", type=float, default=20.0, help="seconds the neighbour runs first")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--compile-mode", default="off", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    cpus = len(os.sched_getaffinity(0))
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    )
    print(f"{cpus} CPUs ({model}); {args.steps} timed learning steps per run, {args.game}")
    cells = [(s, c) for s in args.scenarios for c in args.compile]
    results: dict[tuple[str, str], list[list[float]]] = {cell: [] for cell in cells}
    for r in range(args.rounds):
        for name, mode in cells if r % 2 == 0 else reversed(cells):
            rates = scenario(name, args, cpus, mode)
            results[name, mode].append(rates)
            label = name if mode == "off" else f"{name}, compile={mode}"
            print(f"round {r + 1} {label}: " + ", ".join(f"{x:.1f}" for x in rates), flush=True)
    print()
    print("| scenario | runs x threads | steps/s per run | steps/s in all | grid of 102 runs |")
    print("|---|---|---:|---:|---:|")
    shapes = {
        "alone-all": f"1 x {cpus}",
        "alone-one": "1 x 1",
        "alone-all-passive": f"1 x {cpus}, passive",
        "one-per-core-passive": f"{cpus} x 1, passive",
        "one-per-core": f"{cpus} x 1",
        "all-busy": f"1 x {cpus} + busy",
        "all-busy-passive": f"1 x {cpus} + busy, passive",
        "one-busy": "1 x 1 + busy",
        "oversubscribed": f"{cpus} x {cpus}",
    }
    for (name, mode), rounds in results.items():
        per_run = sum(sum(x) / len(x) for x in rounds) / len(rounds)
        total = sum(sum(x) for x in rounds) / len(rounds)
        grid = "" if "busy" in name else f"{GRID_RUNS * RUN_STEPS / total / 3600:.0f} h"
        label = name if mode == "off" else f"{name}, compile={mode}"
        print(f"| {label} | {shapes[name]} | {per_run:.1f} | {total:.1f} | {grid} |")
    print(
        "\n(grid hours: training steps only, at the measured rate; evaluations and the random"
        " warm-up are extra; busy scenarios share the machine with another job, so no grid time)"
    )


if __name__ == "__main__":
    main()
