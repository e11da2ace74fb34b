"""Where a result came from: the code version recorded with every run and model."""

from __future__ import annotations

import functools
import os
import subprocess

from nightjar import __version__
from nightjar.config_loader import PROJECT_ROOT


@functools.cache
def code_version() -> str:
    """`<package version>+<git commit>[.dirty]`, or `NIGHTJAR_CODE_VERSION` when the launcher set it.

    The launcher resolves it from the checkout and passes it on, because a job running from
    the zipped packages on a cluster has no git repository to ask.
    """
    if os.environ.get("NIGHTJAR_CODE_VERSION"):
        return os.environ["NIGHTJAR_CODE_VERSION"]
    try:
        commit = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+{commit}{'.dirty' if dirty else ''}"
