"""Paths the tests share: the repository root and the released RL split cloned beside it.

CI clones the repository next to ``shared/``; tests that read the RL split skip cleanly
(``needs_rl_parquet``) where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RL_PARQUET = Path(__file__).resolve().parents[2] / "shared/data/EVAds_RL.parquet"
needs_rl_parquet = pytest.mark.skipif(not RL_PARQUET.is_file(),
                                      reason=f"{RL_PARQUET} not present")
