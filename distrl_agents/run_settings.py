"""Which config keys set what a run learns.

Two commands that differ in such a setting (``agent.lr=0.0001``) are two different experiments:
sweep jobs get a directory of their own below ``<game>-<agent>-seed<seed>``
(:func:`distrl_agents.training.sweep.job_subdir`), and ``distrl-report`` labels their runs apart
(:mod:`distrl_agents.evaluation.records`). The other keys name the run itself (game, agent,
seed, preset), its schedule, devices, evaluation cadence or logging.

Resuming a run (:func:`may_change_on_resume`) allows exactly those schedule, device, cadence and
logging keys to change: the run's identity and every run setting must stay what its checkpoints
were trained with.
"""

from __future__ import annotations

__all__ = ["NOT_RUN_SETTINGS", "RUN_IDENTITY", "may_change_on_resume", "names_a_run_setting"]

#: Config keys that do not set what a run learns: already in ``<game>-<agent>-seed<seed>``, or
#: about the schedule, devices, evaluation cadence and logging rather than the run itself.
NOT_RUN_SETTINGS = frozenset(
    {
        "agent", "env.game", "seed", "experiment", "name", "run_dir", "resume",
        "trainer.total_steps", "trainer.device", "trainer.torch_threads", "trainer.eval_period",
        "trainer.eval_episodes", "trainer.eval_steps", "trainer.eval_last_game",
        "trainer.eval_epsilon",
        "trainer.checkpoint_period", "trainer.checkpoint_minutes", "trainer.save_replay",
        "trainer.keep_checkpoints", "logger",
    }
)  # fmt: skip
_NOT_RUN_SETTING_PREFIXES = ("hydra.", "hydra/", "logger.")


def names_a_run_setting(key: str) -> bool:
    """Whether a config key (``agent.lr``) sets what a run learns, as opposed to its identity
    (game, agent, seed, name), schedule, devices, evaluation cadence or logging. Job
    directories, and ``distrl-report``'s labels for runs that differ, are named after these."""
    return key not in NOT_RUN_SETTINGS and not key.startswith(_NOT_RUN_SETTING_PREFIXES)


#: Keys of :data:`NOT_RUN_SETTINGS` that name the run itself (they are in its directory name,
#: not in its settings level): a resumed run keeps them.
RUN_IDENTITY = frozenset({"agent", "agent.name", "env.game", "seed", "name"})


def may_change_on_resume(key: str) -> bool:
    """Whether resuming a run may change config key ``key``: its schedule
    (``trainer.total_steps``), devices and threads, evaluation and checkpoint cadence, logging
    and where the run lives (``run_dir``) -- not its identity or anything that sets what it
    learns (:func:`names_a_run_setting`)."""
    return not names_a_run_setting(key) and key not in RUN_IDENTITY
