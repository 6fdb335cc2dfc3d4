"""Shared fixtures: the bundled sample dataset, generated once and reused."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from paths import REPO

SAMPLE_DIR = REPO / "data" / "sample"
SAMPLE_SEED = 0


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """``data/sample`` (seed 0), generated there when its ``.done`` stamp is missing.

    A file lock keeps two pytest processes from generating it at the same time;
    the second one waits and then finds the stamp.
    """
    from evads_tasks.sample import DONE, generate_sample

    if not (SAMPLE_DIR / DONE).exists():
        SAMPLE_DIR.parent.mkdir(parents=True, exist_ok=True)
        with open(SAMPLE_DIR.parent / ".sample.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not (SAMPLE_DIR / DONE).exists():
                    generate_sample(SAMPLE_DIR, SAMPLE_SEED, progress=False)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    return SAMPLE_DIR
