"""Which config keys set what a run learns.

Two commands that differ in such a setting (``agent.lr=0.0001``) are two different experiments:
sweep jobs get a directory of their own below ``<game>-<agent>-seed<seed>``
(:func:`distrl_agents.training.sweep.job_subdir`), and ``distrl-report`` labels their runs apart
(:mod:`distrl_agents.evaluation.records`). The other keys name the run itself (game, agent,
seed, preset), its schedule, devices, evaluation cadence or logging.
"""

from __future__ import annotations

__all__ = ["NOT_RUN_SETTINGS", "names_a_run_setting"]

#: Config keys that do not set what a run learns: already in ``<game>-<agent>-seed<seed>``, or
#: about the schedule, devices, evaluation cadence and logging rather than the run itself.
NOT_RUN_SETTINGS = frozenset(
    {
        "agent", "env.game", "seed", "experiment", "name", "run_dir", "resume",
        "trainer.total_steps", "trainer.device", "trainer.torch_threads", "trainer.eval_period",
        "trainer.eval_episodes", "trainer.eval_steps", "trainer.eval_last_game",
        "trainer.eval_epsilon",
        "trainer.checkpoint_period", "trainer.checkpoint_minutes", "trainer.save_replay",
        "logger",
    }
)  # fmt: skip
_NOT_RUN_SETTING_PREFIXES = ("hydra.", "hydra/", "logger.")


def names_a_run_setting(key: str) -> bool:
    """Whether a config key (``agent.lr``) sets what a run learns, as opposed to its identity
    (game, agent, seed, name), schedule, devices, evaluation cadence or logging. Job
    directories, and ``distrl-report``'s labels for runs that differ, are named after these."""
    return key not in NOT_RUN_SETTINGS and not key.startswith(_NOT_RUN_SETTING_PREFIXES)
