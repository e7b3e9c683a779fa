"""Replay buffer benchmark: memory per transition, add throughput, batch sample latency.

Usage::

    python scripts/bench_replay.py                    # the standard 1M Atari buffer (~7 GB)
    python scripts/bench_replay.py --capacity 100000  # quicker, smaller

Memory is measured, not computed: resident set size (VmRSS from /proc/self/status) before the
buffer is built and after every slot of its ring has been written (the frame ring's pages are mapped
lazily, so the growth is what the filled buffer really holds). ``nbytes`` (the formula) is printed
beside it. Throughput is rows (env steps) per second for ``num_envs`` 1 and 8; sample latency is the
median over many ``sample(32)`` calls on the filled buffer (prioritized also with the
``update_priorities`` call that follows each sample in training).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np
import torch

from distrl_agents.replay import ReplayBuffer


def rss_bytes() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmRSS not found in /proc/self/status (Linux only)")


class StepSource:
    """Pre-generated random Atari-like steps with episodes (terminals every ~1000 steps, autoreset
    rows with valid=False after them), so the benchmark pays no frame generation cost."""

    def __init__(self, num_envs: int, pool: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.num_envs = num_envs
        self.obs = rng.integers(0, 256, size=(pool, num_envs, 4, 84, 84), dtype=np.uint8)
        self.action = rng.integers(0, 18, size=(pool, num_envs))
        self.reward = rng.choice([0.0, 0.0, 0.0, 1.0, -1.0], size=(pool, num_envs)).astype(
            np.float32
        )
        self.pool = pool
        self.rng = rng
        self.ended = np.zeros(num_envs, bool)

    def feed(self, buf: ReplayBuffer, steps: int) -> float:
        """Add ``steps`` rows per env; return the wall time of the add() calls alone."""
        n = self.num_envs
        term_all = self.rng.random((steps, n)) < 1e-3
        trunc_all = self.rng.random((steps, n)) < 2e-4
        spent = 0.0
        for t in range(steps):
            k = t % self.pool
            valid = ~self.ended
            term, trunc = term_all[t], trunc_all[t]
            start = time.perf_counter()
            buf.add(self.obs[k], self.action[k], self.reward[k], term, trunc, valid=valid)
            spent += time.perf_counter() - start
            # game over (half of the terminals here) or time limit -> next row is the autoreset row
            self.ended = valid & ((term & (self.action[k] % 2 == 0)) | trunc)
        return spent


def sample_latency(
    buf: ReplayBuffer, batch_size: int, iters: int, update: bool
) -> tuple[float, float]:
    """Median ms of sample() alone, and of sample() + update_priorities()."""
    rng = np.random.default_rng(1)
    t_sample, t_both = [], []
    for _ in range(iters):
        start = time.perf_counter()
        batch = buf.sample(batch_size)
        mid = time.perf_counter()
        if update:
            buf.update_priorities(batch.indices, torch.from_numpy(rng.random(batch_size)))
        end = time.perf_counter()
        t_sample.append(mid - start)
        t_both.append(end - start)
    return float(np.median(t_sample) * 1e3), float(np.median(t_both) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--n-step", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--sample-iters", type=int, default=3000)
    parser.add_argument(
        "--add-steps-1env", type=int, default=50_000, help="add() calls timed with num_envs=1"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    rows: list[tuple[str, str]] = []
    per_transition: dict[str, float] = {}
    latency: dict[str, tuple[float, float]] = {}
    add_rate: dict[str, float] = {}

    for prioritized in (False, True):
        kind = "prioritized" if prioritized else "uniform"
        src8 = StepSource(8)
        gc.collect()
        before = rss_bytes()
        buf = ReplayBuffer(args.capacity, num_envs=8, n_step=args.n_step, prioritized=prioritized)
        steps = buf.segment + 2 * args.n_step  # write every slot of every env's ring (and wrap)
        spent = src8.feed(buf, steps)
        after = rss_bytes()
        per_transition[kind] = (after - before) / buf.capacity
        add_rate[f"{kind}, num_envs=8, first fill"] = steps * 8 / spent
        steady = min(args.add_steps_1env // 4, buf.segment)
        add_rate[f"{kind}, num_envs=8"] = steady * 8 / src8.feed(buf, steady)
        rows.append((f"{kind}: nbytes / capacity (formula)", f"{buf.nbytes / buf.capacity:,.1f} B"))
        rows.append((f"{kind}: sampleable after fill", f"{len(buf):,} of {buf.capacity:,}"))
        latency[kind] = sample_latency(buf, args.batch_size, args.sample_iters, update=prioritized)
        del buf
        gc.collect()

        src1 = StepSource(1)
        buf = ReplayBuffer(args.capacity, num_envs=1, n_step=args.n_step, prioritized=prioritized)
        # Pre-fault the frame ring so that add() is timed, not first-touch page faults.
        buf._frames.frames.fill(0)  # type: ignore[attr-defined]
        steps = min(args.add_steps_1env, buf.segment)
        spent = src1.feed(buf, steps)
        add_rate[f"{kind}, num_envs=1"] = steps / spent
        del buf
        gc.collect()

    print(
        f"Replay benchmark: capacity {args.capacity:,}, 84x84 uint8 frames, stack 4, n-step {args.n_step}"
    )
    print(f"torch {torch.__version__}, numpy {np.__version__}, 1 torch thread\n")
    print("| metric | value | target |")
    print("| --- | --- | --- |")
    for kind in ("uniform", "prioritized"):
        print(
            f"| bytes per transition, {kind} (measured RSS growth) | {per_transition[kind]:,.1f} B | <= 7,200 B |"
        )
    for label, value in rows:
        print(f"| {label} | {value} | |")
    for kind in ("uniform", "prioritized"):
        for envs in (1, 8):
            label = f"{kind}, num_envs={envs}"
            print(f"| add throughput, {label} (ring resident) | {add_rate[label]:,.0f} rows/s | |")
        label = f"{kind}, num_envs=8, first fill"
        print(f"| add throughput, {label} (incl. page faults) | {add_rate[label]:,.0f} rows/s | |")
    print(
        f"| sample({args.batch_size}) median, uniform | {latency['uniform'][0]:.3f} ms | <= 0.5 ms |"
    )
    print(
        f"| sample({args.batch_size}) median, prioritized | {latency['prioritized'][0]:.3f} ms | <= 1 ms |"
    )
    print(
        f"| sample({args.batch_size}) + update_priorities median, prioritized | "
        f"{latency['prioritized'][1]:.3f} ms | |"
    )


if __name__ == "__main__":
    main()
