"""When things happen during training, in agent steps: exploration's epsilon, the periodic
tasks (logging, distribution pictures, evaluation, checkpoints) and each evaluation's seeds."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from distrl_agents.training.config import RunConfig

EVAL_SEED_OFFSET = 10_000


def linear_epsilon(step: int, *, start: float, end: float, decay_steps: int, warmup: int) -> float:
    """Epsilon of epsilon-greedy: ``start`` during warm-up, then linear to ``end`` (Dopamine)."""
    if step < warmup:
        return start
    if decay_steps <= 0:
        return end
    frac = min(1.0, (step - warmup) / decay_steps)
    return start + frac * (end - start)


def next_multiple(step: int, period: int) -> int:
    """The first multiple of ``period`` after ``step`` (never, i.e. infinity, if ``period <= 0``)."""
    if period <= 0:
        return math.inf  # type: ignore[return-value]
    return (step // period + 1) * period


@dataclass
class Due:
    """The agent step at which each periodic task of the training loop is next due."""

    log: int
    distributions: int
    evaluation: int
    checkpoint: int

    @classmethod
    def after(cls, step: int, cfg: RunConfig) -> Due:
        """The tasks' next due steps for a run at agent step ``step`` (distribution pictures
        start once learning has)."""
        t, lg = cfg.trainer, cfg.logger
        return cls(
            log=next_multiple(step, lg.log_period),
            distributions=next_multiple(max(step, t.learning_starts), lg.distribution_period),
            evaluation=next_multiple(step, t.eval_period),
            checkpoint=next_multiple(step, t.checkpoint_period),
        )


def eval_env_seed(run_seed: int, eval_index: int) -> int:
    """Environment seed of the ``eval_index``-th periodic evaluation of run ``run_seed``.

    Each evaluation starts its games from fresh seeds (new no-op starts, new sticky-action
    draws) instead of replaying the same ones, and the seed depends only on the run seed and the
    evaluation's index, so a resumed run evaluates exactly as an uninterrupted one. Evaluation
    env ``i`` gets ``eval_env_seed(...) + i``; the value stays below 2**30 for ALE.
    """
    words = np.random.SeedSequence([int(run_seed), EVAL_SEED_OFFSET, int(eval_index)])
    return int(words.generate_state(1, dtype=np.uint32)[0]) % (1 << 30)
