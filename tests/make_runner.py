"""Run ``make`` from a test as a user would from a shell.

Under ``make test`` the suite inherits the outer make's MAKELEVEL, MAKEFLAGS and MFLAGS:
a nested make would then print ``make[1]:`` and share the outer job server. Dropping
them makes the inner run look and behave like the user's own command.
"""

from __future__ import annotations

import os
import subprocess

from paths import REPO

_OUTER_MAKE = ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")


def _clean(env: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (os.environ if env is None else env).items()
            if k not in _OUTER_MAKE}


def run_make(*args: str, env: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess:
    """``make --no-print-directory ARGS`` in the repository root, output captured."""
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, env=_clean(env),
                          capture_output=True, text=True, timeout=timeout)


def start_make(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The same, started in the background in its own process group, so that a test can
    kill make and the command it runs together (``os.killpg(p.pid, signal.SIGKILL)``)."""
    return subprocess.Popen(["make", "--no-print-directory", *args], cwd=REPO,
                            env=_clean(env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
