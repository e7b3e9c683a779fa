"""The run directory, checked before any set-up: a run refuses a directory it could not write
(a file in the way, a read-only file system, missing permissions) with what to do instead."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["check_writable_dir"]


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
