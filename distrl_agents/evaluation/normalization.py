"""Human-normalized scores (Mnih et al. 2015): HNS = (score - random) / (human - random)."""

from __future__ import annotations

import numpy as np

from distrl_agents.envs.games import HUMAN_RANDOM, resolve_game


def _reference(game: str) -> tuple[float, float]:
    try:
        rom = resolve_game(game)
    except ValueError:
        rom = game
    if rom not in HUMAN_RANDOM:
        raise ValueError(
            f"No human/random reference scores for game {game!r}: human-normalized scores exist "
            "only for the 57 games of the Atari-57 benchmark (distrl_agents.envs.games.ATARI57). "
            "Report the raw score for this game instead."
        )
    return HUMAN_RANDOM[rom]


def human_normalized_score(game: str, score: float | np.ndarray) -> float | np.ndarray:
    """Human-normalized score of a raw game score (or array of scores) for an Atari-57 game.

    ``1.0`` is the professional human tester's score, ``0.0`` a uniformly random policy.

    Raises:
        ValueError: the game has no reference scores (not one of the Atari-57).
    """
    random, human = _reference(game)
    out = (np.asarray(score, dtype=np.float64) - random) / (human - random)
    return float(out) if np.ndim(out) == 0 else out


def has_reference_scores(game: str) -> bool:
    try:
        _reference(game)
    except ValueError:
        return False
    return True
