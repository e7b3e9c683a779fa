"""The package's floors, checked on the source: only ``distrl_agents/cli/`` imports Hydra, and
evaluation never imports training (the entry points tie the two together)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "distrl_agents"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imported(path: Path) -> set[str]:
    """Every module that ``path`` imports, at any depth (lazy imports inside functions too),
    with relative imports made absolute."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_the_parser_sees_imports() -> None:
    imported = _imported(PACKAGE / "cli" / "train.py")
    assert any(_within(n, "hydra") for n in imported)
    assert any(_within(n, "distrl_agents.training") for n in imported)


def test_only_the_entry_points_import_hydra() -> None:
    offenders = [
        _rel(p)
        for p in _modules()
        if not _within(".".join(p.relative_to(PACKAGE.parent).parts[:2]), "distrl_agents.cli")
        and any(_within(n, "hydra") for n in _imported(p))
    ]
    assert offenders == [], f"import Hydra outside distrl_agents/cli/: {offenders}"


def test_evaluation_does_not_import_training() -> None:
    offenders = {
        _rel(p): sorted(n for n in _imported(p) if _within(n, "distrl_agents.training"))
        for p in sorted((PACKAGE / "evaluation").rglob("*.py"))
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert offenders == {}, (
        f"distrl_agents/evaluation/ imports distrl_agents/training/: {offenders}"
    )


def _console_scripts() -> dict[str, str]:
    """``[project.scripts]`` of pyproject.toml (``name = "module:function"`` lines; no TOML
    parser in the standard library of Python 3.10)."""
    text = (PACKAGE.parent / "pyproject.toml").read_text(encoding="utf-8")
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]+)"', section, flags=re.M))


def test_every_console_script_names_a_function() -> None:
    scripts = _console_scripts()
    assert {"distrl-train", "distrl-eval", "distrl-report"} <= set(scripts)
    for name, target in scripts.items():
        module, _, function = target.partition(":")
        assert module.startswith("distrl_agents.cli."), f"{name}: {target} is not on the cli floor"
        assert callable(getattr(importlib.import_module(module), function)), f"{name}: {target}"
