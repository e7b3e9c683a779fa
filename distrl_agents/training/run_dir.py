"""The run directory, checked before any set-up: a run refuses a directory it could not write
(a file in the way, a read-only file system, missing permissions) with what to do instead; and
the code that trained in it (:func:`code_record`), which ``config.json`` keeps."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["check_writable_dir", "code_record", "code_version"]


def code_version() -> dict[str, Any]:
    """This installation of distrl-agents: its version and, when it runs from a git checkout,
    the commit and whether files differ from it (``commit`` None otherwise)."""
    from distrl_agents import __version__

    package = Path(__file__).resolve().parents[1]
    commit: str | None = None
    modified: bool | None = None
    try:
        git = ["git", "-C", str(package.parent)]
        top = subprocess.run(
            [*git, "rev-parse", "--show-toplevel"], capture_output=True, text=True, timeout=10
        )
        if top.returncode == 0 and Path(top.stdout.strip()).resolve() == package.parent:
            head = subprocess.run(
                [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
            )
            if head.returncode == 0:
                commit = head.stdout.strip()
                status = subprocess.run(
                    [*git, "status", "--porcelain", "--untracked-files=no", "--", "distrl_agents"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                modified = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": __version__, "commit": commit, "modified": modified}


def code_record(
    previous: Sequence[Mapping[str, Any]] | None, agent_step: int
) -> list[dict[str, Any]]:
    """The code of each stretch of a run: ``previous`` (config.json's list, oldest first), with
    this installation appended (from ``agent_step``) when it differs from the last entry."""
    out = [dict(x) for x in previous or ()]
    now = code_version()
    last = out[-1] if out else None
    if last is None or any(last.get(k) != now[k] for k in now):
        out.append({**now, "from_agent_step": int(agent_step)})
    return out


def check_writable_dir(path: Path) -> None:
    """Raise ``ValueError`` (with what to do) unless ``path`` is, or can be created as, a
    directory this process may write in. Leaves nothing behind (a probe directory is made and
    removed): checked before any set-up."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(
            f"The run directory {path} cannot be created: {existing} is a file, not a "
            "directory. Choose another run_dir (or name)."
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        reason = "is on a read-only file system" if _read_only_fs(existing) else "is not writable"
        raise ValueError(
            f"The run directory {path} cannot be written: {existing} {reason}. Choose a "
            "run_dir (or a working directory) you can write to."
        )
    # Permission bits can say yes where the file system says no (/proc, /sys; root passes every
    # access check): make and remove a directory there.
    try:
        probe = tempfile.mkdtemp(prefix=".distrl-write-check-", dir=existing)
    except OSError as exc:
        raise ValueError(
            f"The run directory {path} cannot be written: {existing} does not accept new "
            f"files ({exc.strerror}). Choose a run_dir (or a working directory) you can write to."
        ) from exc
    os.rmdir(probe)


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False
