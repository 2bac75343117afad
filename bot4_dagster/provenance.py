"""Which code produced something: the git commit of the checkout bot4_dagster runs from.

Read from the package's own directory, not the process's working directory, so a Dagster run
worker started anywhere records the commit of the code it imported.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd or PACKAGE_DIR, capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out at ``cwd`` (default: this package's checkout); None outside git."""
    return _git("rev-parse", "HEAD", cwd=cwd) or None


def git_dirty(cwd: Path | None = None) -> bool | None:
    """Whether tracked files differ from that commit (None outside git): a model trained on
    uncommitted code cannot be rebuilt from its commit alone."""
    status = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    return None if status is None else bool(status)
