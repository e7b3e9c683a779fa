"""The README's recipes, read from README.md itself so that the two cannot drift apart.

* Every ``distrl-train`` command of the README composes into a valid run config (fast).
* The smoke sweep and its ``distrl-report`` run exactly as written and print the kind of
  table the README shows (slow: 8 short trainings).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from distrl_agents.cli.train import misspelled_key_message
from distrl_agents.training.config import RunConfig

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """Every command of the README's ``bash`` blocks (continuation lines joined, comments
    dropped, ``a && b`` as two commands), then the ``distrl-train ...`` commands quoted in its
    text."""
    text = README.read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands += [" ".join(c.split()) for c in line.split("&&")]
    inline = re.findall(r"`(distrl-train [^`]*)`", re.sub(r"```.*?```", "", text, flags=re.S))
    return commands + [" ".join(c.split()) for c in inline]


def _train_args(command: str) -> list[str] | None:
    """The overrides of a ``distrl-train`` / ``python -m distrl_agents.train`` command."""
    words = shlex.split(command)
    if words[:1] == ["distrl-train"]:
        return words[1:]
    if words[:3] == ["python", "-m", "distrl_agents.train"]:
        return words[3:]
    return None


TRAIN_COMMANDS = [c for c in readme_commands() if _train_args(c) is not None]


def test_readme_has_the_recipes() -> None:
    commands = readme_commands()
    assert any(c.startswith("distrl-report multirun/smoke/") for c in commands)
    assert any("hydra/launcher=slurm" in c for c in TRAIN_COMMANDS)
    assert len(TRAIN_COMMANDS) >= 8


def _composed(args: list[str]) -> Any:
    """Compose a command's config; a sweep (-m) with the first value of each list."""
    overrides = [a for a in args if a != "-m"]
    if "-m" in args:
        overrides = [
            (k + "=" + v.split(",", 1)[0]) if "=" in a else a
            for a in overrides
            for k, _, v in [a.partition("=")]
        ]
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("command", TRAIN_COMMANDS)
def test_readme_train_command_is_a_valid_run(command: str) -> None:
    args = _train_args(command)
    assert args is not None
    assert misspelled_key_message(args) is None
    if any(a.startswith("resume=") for a in args):
        return  # continues an existing run directory: its config.json is the config
    cfg = _composed(args)
    raw = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(raw, dict)
    raw.pop("hydra")
    raw.pop("resume", None)
    run_cfg = RunConfig.from_dict(OmegaConf.to_container(OmegaConf.create(raw), resolve=True))  # type: ignore[arg-type]
    run_cfg.validate()


@pytest.mark.slow
def test_readme_smoke_sweep_and_report_print_the_readme_tables(tmp_path: Path) -> None:
    """The example sweep and its report, as written: the report prints a per-game table
    and an aggregate table with the README's columns, every game and agent of the sweep in
    them, and finite scores."""
    commands = readme_commands()
    (sweep_cmd,) = [c for c in TRAIN_COMMANDS if "experiment=smoke" in c and "-m" in c.split()]
    (report_cmd,) = [c for c in commands if c.startswith("distrl-report multirun/smoke/")]
    args = _train_args(sweep_cmd)
    assert args is not None
    r = subprocess.run(
        [sys.executable, "-m", "distrl_agents.train", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-4000:]
    (sweep_dir,) = (tmp_path / "multirun" / "smoke").iterdir()
    report_args = shlex.split(report_cmd.replace("<timestamp>", sweep_dir.name))[1:]
    r = subprocess.run(
        [sys.executable, "-c", "import sys; from distrl_agents.cli.report import report_main; "
         "sys.exit(report_main(sys.argv[1:]))", *report_args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "no results" not in (out + r.stderr).lower(), out + r.stderr
    readme = README.read_text()
    example = readme[readme.index(report_cmd) : readme.index("The report also names")]
    headers = re.findall(r"^\| (?:game|agent) \|.*\|$", example, flags=re.M)
    assert len(headers) == 2, example  # the per-game table and the aggregate table
    for header in headers:
        assert header in out, f"README table header not printed:\n{header}\n---\n{out}"
    for game in ("pong", "breakout"):
        row = re.search(rf"^\| {game} \|(.*)\|$", out, flags=re.M)
        assert row and "nan" not in row.group(1), out
    for agent in ("c51", "qrdqn"):
        row = re.search(rf"^\| {agent} \| 2 \| 2 \|(.*)\|$", out, flags=re.M)
        assert row and "nan" not in row.group(1), out
