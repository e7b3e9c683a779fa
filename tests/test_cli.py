"""The command-line layer: Hydra composition of every preset, config errors, a real smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from distrl_agents.agents import AGENT_NAMES
from distrl_agents.training.config import RunConfig

CONFIGS = Path(__file__).resolve().parents[1] / "distrl_agents" / "configs"
EXPERIMENTS = sorted(p.stem for p in (CONFIGS / "experiment").glob("*.yaml"))


def composed(*overrides: str) -> RunConfig:
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        cfg = compose("train", overrides=list(overrides))
    raw = cast(dict[str, Any], OmegaConf.to_container(cfg, resolve=True))  # the train config
    return RunConfig.from_dict(raw)


def test_default_config_is_a_real_training_run() -> None:
    cfg = composed()
    assert cfg.agent_name in AGENT_NAMES
    assert cfg.env.game == "kung_fu_master" and cfg.trainer.total_steps >= 100_000


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes(experiment: str) -> None:
    cfg = composed(f"experiment={experiment}")
    if not experiment.startswith("sweep_"):  # sweep lists keep the name of the preset they extend
        assert cfg.name == experiment
    for agent in ("c51", "iqn"):
        if experiment.endswith("_paper") or experiment.startswith("dopamine_"):
            continue  # these presets choose their own agent
        assert composed(f"experiment={experiment}", f"agent={agent}").agent_name == agent


# The agents with a paper preset (experiment/<agent>_paper.yaml).
@pytest.mark.parametrize(
    "agent", [a for a in AGENT_NAMES if (CONFIGS / "experiment" / f"{a}_paper.yaml").exists()]
)
def test_paper_presets_pick_their_agent_and_protocol(agent: str) -> None:
    cfg = composed(f"experiment={agent}_paper")
    assert cfg.agent_name == agent
    assert cfg.env.protocol == "nature"
    t = cfg.trainer
    if agent == "dqn":  # Mnih et al. 2015: 50M frames, epsilon 0.1 / 0.05, the paper's RMSProp
        assert t.total_steps * 4 == 50_000_000
        assert (t.epsilon_end, t.eval_epsilon) == (0.1, 0.05)
        assert cfg.agent["optimizer"] == "rmsprop_tf" and cfg.agent["optimizer_eps"] == 0.01
        assert cfg.agent["rmsprop_initial_ms"] == 0.0 and cfg.agent["rmsprop_centered"]
    else:  # the distributional papers (C51, Bellemare et al. 2017): 200M frames, 0.01 / 0.001
        assert t.total_steps * 4 == 200_000_000
        assert (t.epsilon_end, t.eval_epsilon) == (0.01, 0.001)
    assert (t.learning_starts, t.target_update_period, t.epsilon_decay_steps) == (
        50_000,
        10_000,
        1_000_000,
    )


def test_dqn_agent_preset_is_dopamines_tf_rmsprop() -> None:
    cfg = composed("~experiment", "agent=dqn")  # the agent group alone, without atari100k's Adam
    a = cfg.agent
    assert a["optimizer"] == "rmsprop_tf" and a["optimizer_eps"] == 1e-5  # dqn.gin
    assert a["rmsprop_alpha"] == 0.95 and a["rmsprop_centered"] and a["rmsprop_initial_ms"] == 1.0


@pytest.mark.parametrize("agent", AGENT_NAMES)
def test_atari100k_is_data_efficient_rainbow_for_every_agent(agent: str) -> None:
    # van Hasselt et al. 2019, Appendix table.
    cfg = composed("experiment=atari100k", f"agent={agent}")
    t, r, n, a = cfg.trainer, cfg.replay, cfg.network, cfg.agent
    assert cfg.agent_name == agent and cfg.env.protocol == "nature"
    assert (t.total_steps, t.update_period, t.learning_starts, t.target_update_period) == (
        100_000,
        1,
        1600,
        2000,
    )
    assert (a["optimizer"], a["lr"], a["optimizer_eps"], a["double_dqn"]) == (
        "adam",
        1e-4,
        1.5e-4,
        True,
    )
    assert r.prioritized and (r.alpha, r.beta, r.beta_steps, r.n_step) == (0.5, 0.4, None, 20)
    assert (n["torso"], n["hidden"], n["dueling"], n["noisy"], n["noisy_std"]) == (
        "der",
        256,
        True,
        True,
        0.1,
    )
    assert t.epsilon_start == t.epsilon_end == 0.0
    assert t.warmup_actions == "uniform"
    assert a["max_grad_norm"] == 10  # DER's table: max gradient norm 10
    assert cfg.env.overrides == {}  # nature: no FIRE on reset
    assert (t.eval_episodes, t.eval_steps, t.eval_period) == (100, 0, 100_000)


def test_atari100k_dopamine_is_dopamines_der_gin() -> None:
    cfg = composed("experiment=atari100k_dopamine", "agent=c51")
    t, r, n, a = cfg.trainer, cfg.replay, cfg.network, cfg.agent
    assert cfg.name == "atari100k_dopamine" and r.n_step == 10
    # Dopamine's full Rainbow: zero_epsilon with noisy nets, warm-up played by the network.
    assert (t.epsilon_start, t.epsilon_end, t.epsilon_decay_steps, t.eval_epsilon) == (
        0.0,
        0.0,
        0,
        0.001,
    )
    assert t.warmup_actions == "agent" and a["max_grad_norm"] is None
    assert (n["torso"], n["hidden"], n["noisy_std"]) == ("dopamine", 512, 0.1)
    assert (a["lr"], a["optimizer_eps"], a["double_dqn"]) == (1e-4, 1.5e-4, True)
    assert r.prioritized and r.alpha == 0.5 and r.beta == 0.5
    assert r.beta_steps is not None and r.beta_steps >= 1e12  # constant 1/sqrt(P) weights
    assert cfg.env.overrides == {}  # the nature protocol presses no FIRE, as Dopamine


def test_atari100k_and_dopamine_presets() -> None:
    cfg = composed("experiment=dopamine_iqn")
    assert cfg.env.protocol == "machado" and cfg.replay.n_step == 3
    assert cfg.trainer.eval_period == 250_000 and cfg.trainer.eval_steps == 125_000


def test_dopamine_quantile_is_dopamines_quantile_gin() -> None:
    cfg = composed("experiment=dopamine_quantile")
    a, r, t = cfg.agent, cfg.replay, cfg.trainer
    assert cfg.agent_name == "qrdqn" and cfg.env.protocol == "machado"
    assert (a["num_quantiles"], a["kappa"], a["optimizer"], a["lr"], a["optimizer_eps"]) == (
        200, 1.0, "adam", 5e-5, 3.125e-4,
    )  # fmt: skip
    assert not a["double_dqn"]
    assert r.prioritized and r.n_step == 3 and r.capacity == 1_000_000
    assert (r.alpha, r.priority_eps, r.beta) == (0.5, 1e-10, 0.0)
    assert r.beta_steps is not None and r.beta_steps >= 1e12  # the update is unweighted
    assert (t.learning_starts, t.update_period, t.target_update_period) == (20_000, 4, 8_000)
    assert (t.epsilon_end, t.epsilon_decay_steps, t.eval_epsilon) == (0.01, 250_000, 0.001)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distrl_agents.train", *args],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_config_errors_stop_before_any_work(tmp_path: Path) -> None:
    r = _cli("trainer.learning_starts=2000000", cwd=tmp_path)
    assert r.returncode != 0 and "trainer.learning_starts" in r.stderr
    r = _cli("env.game=breakot", cwd=tmp_path)
    assert r.returncode != 0 and "breakout" in r.stderr
    r = _cli("agent=rainbow", cwd=tmp_path)
    assert r.returncode != 0 and "c51" in r.stderr + r.stdout
    assert not (tmp_path / "runs").exists()


def test_smoke_run_through_the_cli_then_resume_is_a_no_op(tmp_path: Path) -> None:
    args = (
        "experiment=smoke",
        "agent=c51",
        "trainer.total_steps=240",
        "trainer.eval_steps=60",
        "logger.progress=false",
    )
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "smoke" / "kung_fu_master-c51-seed0"
    assert (run_dir / "config.json").is_file() and (run_dir / "tb").is_dir()
    assert json.loads((run_dir / "config.json").read_text())["agent"]["name"] == "c51"
    # Relaunching the same command resumes the finished run: nothing more to do.
    r = _cli(*args, cwd=tmp_path)
    assert r.returncode == 0 and "Resuming" in r.stderr and "finished at agent step 240" in r.stderr
    # resume=<dir> keeps the run's own settings: changing the agent is refused.
    r = _cli(f"resume={run_dir}", "agent=iqn", cwd=tmp_path)
    assert r.returncode == 2 and "agent=iqn" in r.stderr
    # Another learning rate is another run, in a directory of its own (not a resume of this one).
    r = _cli(*args, "agent.lr=0.001", cwd=tmp_path)
    assert r.returncode == 0 and "Resuming" not in r.stderr, r.stderr
    assert (run_dir / "agent.lr=0.001" / "config.json").is_file()
    # resume=<dir> with a longer budget continues it.
    r = _cli(f"resume={run_dir}", "trainer.total_steps=300", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "finished at agent step 300" in r.stderr


def test_misspelled_key_names_the_valid_keys_and_the_closest(tmp_path: Path) -> None:
    r = _cli("experiment=smoke", "trainer.total_step=100", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "Unknown field(s) trainer.total_step" in r.stderr
    assert (
        "Valid fields of trainer:" in r.stderr and "Did you mean trainer.total_steps?" in r.stderr
    )
    from distrl_agents.cli.train import misspelled_key_message

    # The fields of the agent chosen on the command line (IQN has kappa, C51 has not).
    assert "agent.kappa?" in (misspelled_key_message(["agent=iqn", "agent.kapa=1"]) or "")
    assert misspelled_key_message(["agent=iqn", "agent.kappa=2", "+agent.risk=cvar"]) is None
    assert misspelled_key_message(["-m", "agent=c51,iqn", "env.game=pong,breakout"]) is None
    assert misspelled_key_message(["agent=rainbow", "agent.lr=1"]) is None  # Hydra says it
    assert not (tmp_path / "runs").exists()


def test_misspelled_group_or_top_level_key_says_did_you_mean(tmp_path: Path) -> None:
    r = _cli("agnet=iqn", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "Unknown config group or field agnet" in r.stderr and "Did you mean agent?" in r.stderr
    assert "+agnet" not in r.stderr + r.stdout  # not Hydra's advice to add it
    from distrl_agents.cli.train import misspelled_key_message

    message = misspelled_key_message(["trainr.total_steps=5"]) or ""
    assert "Did you mean trainer.total_steps?" in message and "Config groups: agent," in message
    assert "Did you mean seed?" in (misspelled_key_message(["seeed=1"]) or "")
    assert "Did you mean experiment?" in (misspelled_key_message(["experimnt=smoke"]) or "")
    fine = ["seed=1", "name=x", "run_dir=r", "experiment=smoke", "hydra/launcher=local",
            "hydra.job.chdir=true", "+extra=1"]  # fmt: skip
    assert misspelled_key_message(fine) is None
    assert not (tmp_path / "runs").exists()


def test_unwritable_run_dir_is_a_clear_error_before_set_up(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    r = _cli("experiment=smoke", "run_dir=afile/run", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "afile is a file, not a directory" in r.stderr
    assert "Training" not in r.stderr


def test_read_only_run_dir_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from distrl_agents.training import run_dir

    real_access = os.access
    monkeypatch.setattr(run_dir.os, "access", lambda path, mode: False)
    monkeypatch.setattr(run_dir, "_read_only_fs", lambda path: True)
    with pytest.raises(ValueError, match="read-only file system"):
        run_dir.check_writable_dir(tmp_path / "new" / "run")
    monkeypatch.setattr(run_dir.os, "access", real_access)
    run_dir.check_writable_dir(tmp_path / "new" / "run")
    assert not (tmp_path / "new").exists()  # the check writes nothing


def test_risk_sensitive_run_directory_names_the_risk_once() -> None:
    from distrl_agents.cli.train import default_run_dir

    cfg = composed("agent=iqn", "+agent.risk=cvar", "+agent.risk_param=0.25")
    assert cfg.agent_label == "iqn+cvar0.25"  # reports still tell it apart
    path = default_run_dir(cfg, ["agent=iqn", "+agent.risk=cvar", "+agent.risk_param=0.25"])
    assert (
        path.as_posix()
        == "runs/atari100k/kung_fu_master-iqn-seed0/agent.risk=cvar,agent.risk_param=0.25"
    )


def test_help_lists_launchers_and_risk_options(tmp_path: Path) -> None:
    from distrl_agents.risk import RISK_MEASURES

    r = _cli("--help", cwd=tmp_path)
    assert r.returncode == 0
    assert "hydra/launcher=local" in r.stdout and "hydra/launcher=slurm" in r.stdout
    assert "+agent.risk=" + "|".join(RISK_MEASURES) in r.stdout
    assert "+agent.risk_param" in r.stdout


def test_final_result_line_sets_the_score_next_to_der_and_human() -> None:
    from distrl_agents.cli.train import final_result_line
    from distrl_agents.evaluation.evaluator import EvalResult

    result = EvalResult(
        game="kung_fu_master",
        episode_returns=[12_000.0, 14_000.0],
        episode_lengths=[900, 950],
        agent_steps=1850,
    )
    line = final_result_line("atari100k", result)
    # HNS = (13,000 - 258.5) / (22,736.3 - 258.5) = 0.567; DER 14,346.1 -> 0.627
    assert line.startswith("final evaluation: 13,000.0 +- 1,000.0 over 2 games of kung_fu_master")
    assert "(HNS 0.567)" in line and "DER 14,346.1 (HNS 0.627)" in line
    assert line.endswith("human 22,736.3")
    assert "DER" not in final_result_line("dopamine_c51", result)  # DER is a 100k-step score
    none = EvalResult(game="pong", episode_returns=[], episode_lengths=[], agent_steps=0)
    assert "no game of pong finished" in final_result_line("atari100k", none)


def test_the_default_run_is_atari100k_on_a_game_that_learns_in_100k_steps() -> None:
    cfg = composed()
    assert cfg.name == "atari100k" and cfg.env.game == "kung_fu_master"
    assert cfg.trainer.total_steps == 100_000 and cfg.trainer.eval_episodes == 100
    bare = composed("~experiment")  # the groups alone: machado protocol, 200M frames
    assert bare.env.protocol == "machado" and bare.trainer.total_steps == 50_000_000
