"""The package's shape, checked on the source: no module grows past 500 lines (split it by
responsibility instead) and no package or module takes a standard-library module's name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "distrl_agents"
MAX_LINES = 500
#: Modules named like a standard-library module that predate this check (a package-relative
#: import cannot mistake them, but a new one should get another name).
STDLIB_NAMED = {"distrl_agents/types.py"}


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_no_package_module_is_over_500_lines() -> None:
    sizes = {
        _rel(p): len(p.read_text(encoding="utf-8").splitlines()) for p in PACKAGE.rglob("*.py")
    }
    assert sizes, "no modules found"
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert too_long == {}, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_no_package_or_module_shadows_the_standard_library() -> None:
    named = [
        p
        for p in PACKAGE.rglob("*")
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    ]
    shadowing = {
        _rel(p)
        for p in named
        if (p.stem if p.suffix == ".py" else p.name) in sys.stdlib_module_names
    }
    assert shadowing <= STDLIB_NAMED, f"standard-library names: {sorted(shadowing - STDLIB_NAMED)}"


@pytest.mark.parametrize(
    ("module", "program"),
    [("cli.train", "distrl-train"), ("cli.eval", "distrl-eval"), ("cli.report", "distrl-report")],
)
def test_each_command_also_runs_as_a_module(module: str, program: str) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", f"distrl_agents.{module}", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert program in out.stdout or "distrl" in out.stdout, out.stdout[:300]
