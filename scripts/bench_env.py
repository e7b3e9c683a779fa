"""Environment throughput: our make_atari_env next to ale-py's raw AtariVectorEnv.

Prints agent steps/s and frames/s for several env counts, with random actions, so any overhead of
the factory (protocol handling, raw-score bookkeeping, autoreset marking) shows as a ratio.

    python scripts/bench_env.py [--game breakout] [--steps 2000] [--envs 1 8 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from ale_py.vector_env import AtariVectorEnv

from distrl_agents.envs import make_atari_env


def _rate(env, num_envs: int, steps: int, num_actions: int) -> float:
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, num_actions, (steps, num_envs))
    for a in actions[: steps // 10]:  # warm-up
        env.step(a)
    start = time.perf_counter()
    for a in actions:
        env.step(a)
    return steps * num_envs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--game", default="breakout")
    parser.add_argument("--steps", type=int, default=2000, help="vector steps per measurement")
    parser.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--repeats", type=int, default=3, help="best of N alternating runs")
    args = parser.parse_args()
    print(f"game={args.game}, machado protocol settings for both, best of {args.repeats}")
    print("| envs | raw steps/s | ours steps/s | raw frames/s | ours frames/s | ours/raw |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in args.envs:
        steps = max(200, args.steps // max(1, n // 4))
        ours = make_atari_env(args.game, protocol="machado", num_envs=n)
        raw = AtariVectorEnv(
            args.game, n, repeat_action_probability=0.25, noop_max=0, use_fire_reset=False,
            reward_clipping=False,
        )  # fmt: skip
        na = ours.num_actions
        r_raw, r_ours = 0.0, 0.0
        for _ in range(args.repeats):  # alternate to share any machine noise fairly
            r_raw = max(r_raw, _rate(raw, n, steps, na))
            r_ours = max(r_ours, _rate(ours, n, steps, na))
        print(
            f"| {n} | {r_raw:,.0f} | {r_ours:,.0f} | {4 * r_raw:,.0f} | {4 * r_ours:,.0f} "
            f"| {r_ours / r_raw:.3f} |"
        )
        ours.close()
        raw.close()


if __name__ == "__main__":
    main()
