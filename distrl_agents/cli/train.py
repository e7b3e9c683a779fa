"""``distrl-train``: the Hydra app over ``distrl_agents/configs/train.yaml``.

This is the only module that imports Hydra; everything below it takes explicit arguments.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any, cast

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from distrl_agents.training.sweep import job_subdir

__all__ = [
    "SlurmLauncherCheck",
    "default_run_dir",
    "final_result_line",
    "misspelled_key_message",
    "quote_path_overrides",
    "train_main",
]

#: The OmegaConf resolver that ``hydra.sweep.subdir`` (configs/train.yaml) calls.
JOB_DIR_RESOLVER = "distrl_job_dir"
# Registered on import, so that launcher worker processes (which import this module to run
# the task) have it too.
if not OmegaConf.has_resolver(JOB_DIR_RESOLVER):
    OmegaConf.register_new_resolver(JOB_DIR_RESOLVER, job_subdir)

_USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError)


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def default_run_dir(run_cfg: Any, overrides: Any = ()) -> Path:
    """``runs/<experiment name>/<game>-<agent>-seed<seed>[/<settings>]``: the same command
    always lands in the same directory, so relaunching it resumes the run; a command that sets
    other run settings (``agent.lr=0.0001``) gets a directory of its own below, named after them
    as in sweeps (:func:`distrl_agents.training.sweep.job_subdir`)."""
    # The agent's name, not its label: risk-sensitive acting (agent.risk=cvar) is named once,
    # by the settings level below, as in sweeps.
    name = job_subdir(run_cfg.env.game, run_cfg.agent_name, run_cfg.seed, overrides)
    return Path("runs") / str(run_cfg.name) / name


def _explicit_overrides(prefixes: tuple[str, ...]) -> list[str]:
    from hydra.core.hydra_config import HydraConfig

    task = HydraConfig.get().overrides.task
    return [o for o in task if o.split("=", 1)[0].lstrip("+~").startswith(prefixes)]


def _train_task(cfg: Any) -> dict[str, Any] | None:
    """The Hydra task: compose -> validate -> build everything -> train."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from distrl_agents.envs.games import resolve_game
    from distrl_agents.training.config import RunConfig
    from distrl_agents.training.sweep import assign_job_resources

    run_dir: Path | None = None
    if cfg.get("resume"):
        run_dir = Path(str(cfg.resume))
        raw_dict = _resumed_config(run_dir)
    else:
        raw_dict = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))
        raw_dict.pop("resume", None)
    # Sweeps (hydra/launcher=local or slurm): this job's CPU threads and GPU.
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    assign_job_resources(
        raw_dict.setdefault("trainer", {}), sweep_dir=hydra_cfg.sweep.dir if multirun else None
    )
    try:
        raw_dict.setdefault("env", {})["game"] = resolve_game(str(raw_dict["env"]["game"]))
        run_cfg = RunConfig.from_dict(raw_dict)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    if run_dir is None:
        if run_cfg.run_dir:
            run_dir = Path(run_cfg.run_dir)
        elif multirun:
            run_dir = Path(hydra_cfg.runtime.output_dir)
        else:
            run_dir = default_run_dir(run_cfg, hydra_cfg.overrides.task)
    return run_training(run_cfg, run_dir)


def _resumed_config(run_dir: Path) -> dict[str, Any]:
    """``resume=<run_dir>``: the run's saved config.json, with the command line's overrides of
    the settings a resume may change (``distrl_agents.training.resume.resumable_settings``)
    applied; any other override is refused."""
    import json

    from distrl_agents.run_settings import may_change_on_resume
    from distrl_agents.training.resume import resumable_settings

    saved = run_dir / "config.json"
    if not saved.is_file():
        _fail(
            f"resume={run_dir}: no {saved.name} there. Give the directory of an earlier "
            "distrl-train run (it holds config.json and checkpoints/)."
        )
    try:
        raw = OmegaConf.create(json.loads(saved.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        _fail(f"resume={run_dir}: {saved} cannot be read ({exc}).")
    applied: list[str] = []
    refused: list[str] = []
    for override in _explicit_overrides(("",)):
        key = override.split("=", 1)[0]
        name = key.lstrip("+~")
        if name == "resume" or name.startswith(("hydra.", "hydra/")):
            continue
        ok = "=" in override and not key.startswith("~") and "." in name
        (applied if ok and may_change_on_resume(name) else refused).append(override)
    if refused:
        may_change = ", ".join(k for k in resumable_settings() if k != "run_dir")
        _fail(
            f"resume={run_dir} continues that run with its saved config.json; a resumed run may "
            f"change only {may_change}, not {', '.join(refused)}. Start a "
            "new run (another run_dir, name or seed) to change them."
        )
    for override in applied:
        key, value = override.lstrip("+").split("=", 1)
        OmegaConf.update(raw, key, _yaml_value(value), force_add=True)
    return cast(dict[str, Any], OmegaConf.to_container(raw, resolve=True))


def _yaml_value(text: str) -> Any:
    import yaml

    return yaml.safe_load(text) if text else text


def run_training(run_cfg: Any, run_dir: Path) -> dict[str, Any]:
    from distrl_agents.training.checkpoint import CheckpointError
    from distrl_agents.training.loop import Trainer
    from distrl_agents.training.sweep import leave_job_unfinished, requeue_if_preempted

    try:
        trainer = Trainer(run_cfg, run_dir)
    except _USER_ERRORS as exc:
        _fail(str(exc))
    try:
        if trainer._resume_from is not None:
            print(f"Resuming {run_dir} from {trainer._resume_from.name}", file=sys.stderr)
        else:
            print(
                f"Training {run_cfg.agent_name} on {trainer.game} ({run_cfg.env.protocol} "
                f"protocol) -> {run_dir}",
                file=sys.stderr,
            )
        summary = trainer.run()
    except CheckpointError as exc:  # e.g. a damaged replay file found while resuming
        _fail(str(exc))
    finally:
        trainer.close()
    state = "finished" if summary.finished else f"stopped by {summary.stopped_by}"
    print(
        f"{state} at agent step {summary.agent_step:,} ({summary.num_updates:,} updates); "
        f"checkpoint and logs in {run_dir}",
        file=sys.stderr,
    )
    if summary.finished and summary.last_eval is not None:
        print(final_result_line(run_cfg.name, summary.last_eval), file=sys.stderr)
    # SLURM (submitit): stopped by its time-limit / pre-emption signal -> requeue this job.
    requeue_if_preempted(summary.stopped_by)
    # SLURM, stopped by SIGTERM (scancel, scontrol requeue): no result; a requeued job resumes.
    leave_job_unfinished(summary.stopped_by)
    return {"run_dir": str(run_dir), "agent_step": summary.agent_step}


def final_result_line(preset: str, result: Any) -> str:
    """The run's last evaluation next to the human score and, for an Atari-100k preset, DER's
    published score at 100k steps: ``final evaluation: 13,210 +- 401 over 100 games (HNS 0.576);
    DER 14,346 (HNS 0.627), human 22,736``."""
    import numpy as np

    from distrl_agents.envs.games import HUMAN_RANDOM, resolve_game
    from distrl_agents.evaluation.benchmarks import published_per_game
    from distrl_agents.evaluation.normalization import has_reference_scores, human_normalized_score

    game, returns = result.game, list(result.episode_returns)
    if not returns:
        return f"final evaluation: no game of {game} finished within the evaluation budget"
    mean = float(np.mean(returns))
    sem = float(np.std(returns, ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0
    line = f"final evaluation: {mean:,.1f} +- {sem:,.1f} over {len(returns)} games of {game}"
    if not has_reference_scores(game):
        return line
    line += f" (HNS {float(human_normalized_score(game, mean)):.3f})"
    parts = []
    der = published_per_game("DER").get(game) if preset.startswith("atari100k") else None
    if der is not None:
        parts.append(f"DER {der:,.1f} (HNS {float(human_normalized_score(game, der)):.3f})")
    parts.append(f"human {HUMAN_RANDOM[resolve_game(game)][1]:,.1f}")
    return line + "; " + ", ".join(parts)


#: Config groups whose fields the command line sets as ``<group>.<field>=...``.
_GROUPS = ("agent", "env", "network", "replay", "trainer", "logger")
#: Config groups chosen as ``<group>=<option>`` that have no fields of their own.
_CHOICE_ONLY_GROUPS = ("experiment",)
#: Top-level fields of configs/train.yaml, known without composing it.
_KNOWN_TOPS = frozenset({"name", "seed", "run_dir", "resume"})


def misspelled_key_message(argv: list[str]) -> str | None:
    """The message for a command line that sets a field or group its config does not have
    (``trainer.total_step=...``, ``agnet=iqn``), in the words of every other config mistake:
    the valid names and the closest one. None when every key exists, or when the command line
    cannot be composed (Hydra then reports that itself)."""
    keys, tops, choices = [], [], []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        if key.startswith(("+", "~")) or key.startswith(("hydra.", "hydra/")):
            continue  # adds or deletes a field on purpose; Hydra's own settings
        head = key.split(".", 1)[0]
        if "." in key and head in _GROUPS:
            keys.append(key)
        elif key in (*_GROUPS, *_CHOICE_ONLY_GROUPS):
            choices.append(f"{key}={value.split(',', 1)[0]}")  # a sweep's first value
        elif "/" not in key:
            tops.append(key)
    if not keys and not set(tops) - _KNOWN_TOPS:
        return None  # nothing to look up (composing takes a moment)
    try:
        from hydra import compose, initialize_config_module
        from omegaconf import DictConfig, OmegaConf

        with initialize_config_module("distrl_agents.configs", version_base="1.3"):
            cfg = compose("train", overrides=choices)
    except Exception:  # a mistake Hydra reports better (unknown agent, bad syntax)
        return None
    from distrl_agents.training.config import unknown_fields_message

    valid_tops = {str(k) for k in cfg if k != "hydra"} | set(_CHOICE_ONLY_GROUPS)
    for key in tops:
        head = key.split(".", 1)[0]
        if head not in valid_tops:
            return _unknown_top_message(key, head, valid_tops)
    for key in keys:
        section, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, section)
        if isinstance(node, DictConfig) and leaf not in node:
            return unknown_fields_message(section, [leaf], [str(k) for k in node])
    return None


def _unknown_top_message(key: str, head: str, valid: set[str]) -> str:
    """``Unknown config group or field agnet ... Did you mean agent?``"""
    import difflib

    groups = sorted(g for g in valid if g in (*_GROUPS, *_CHOICE_ONLY_GROUPS))
    fields = sorted(valid - set(groups))
    match = difflib.get_close_matches(head, sorted(valid), n=1, cutoff=0.6)
    hint = f" Did you mean {match[0]}{key[len(head) :]}?" if match else ""
    return (
        f"Unknown config group or field {head}. Config groups: {', '.join(groups)}; top-level "
        f"fields: {', '.join(fields)}.{hint}"
    )


#: Command-line keys whose value is a path, given to Hydra quoted (a path may hold ``=``).
_PATH_KEYS = ("resume", "run_dir")
_PLAIN_VALUE = re.compile(r"[\w./~@%+-]*")


def quote_path_overrides(argv: list[str]) -> list[str]:
    """``resume=runs/x/env.overrides.a=400`` -> ``resume='runs/x/env.overrides.a=400'``: run
    directories this project names after settings hold ``=``, which Hydra's override parser
    reads as syntax. Values already quoted, plain ones and ``null`` are left as they are."""
    out = []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if (
            sep
            and key.lstrip("+") in _PATH_KEYS
            and value[:1] not in ("'", '"')
            and not _PLAIN_VALUE.fullmatch(value)
        ):
            escaped = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)
            escaped = escaped.replace("${", "\\${")
            if escaped.endswith("\\"):
                escaped += re.search(r"\\*$", escaped).group(0)  # type: ignore[union-attr]
            arg = f"{key}='{escaped}'"
        out.append(arg)
    return out


_CHECKED_KEYS = (
    "timeout_min", "signal_delay_s", "max_num_timeout", "array_parallelism", "cpus_per_task",
    "gpus_per_node", "mem_gb", "nodes", "tasks_per_node", "partition",
)  # fmt: skip


class SlurmLauncherCheck(Callback):
    """Hydra callback (``hydra.callbacks`` in hydra/launcher/slurm.yaml): stops a SLURM sweep
    with one message per bad setting before anything is submitted."""

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        node = config.hydra.launcher
        from distrl_agents.training.sweep import check_slurm_launcher

        problems = check_slurm_launcher({k: node.get(k) for k in _CHECKED_KEYS if k in node})
        timeout_min, delay = node.get("timeout_min"), node.get("signal_delay_s")
        if not problems and int(delay) * 2 > int(timeout_min) * 60:
            print(
                f"warning: hydra.launcher.signal_delay_s={delay} is more than half of "
                f"hydra.launcher.timeout_min={timeout_min}: each submission trains for "
                f"{timeout_min * 60 - delay} s before the time-limit signal.",
                file=sys.stderr,
            )
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            print("Nothing was submitted.", file=sys.stderr)
            raise SystemExit(2)


def train_main() -> None:
    """``distrl-train``: Hydra app over ``distrl_agents/configs/train.yaml``."""
    import hydra

    message = misspelled_key_message(sys.argv[1:])
    if message:
        _fail(message)
    sys.argv[1:] = quote_path_overrides(sys.argv[1:])
    app = hydra.main(
        config_path="pkg://distrl_agents.configs", config_name="train", version_base="1.3"
    )
    app(_train_task)()


if __name__ == "__main__":  # python -m distrl_agents.cli.train ... (as distrl-train)
    train_main()
