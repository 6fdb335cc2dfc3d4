"""Paths the tests share: the repository root, and the released RL split, the Mandarin
speech clips and the authors' evaluation script in ``shared/`` beside it.

CI clones the repository next to ``shared/``; tests that read the RL split, the speech clips
or the authors' script skip cleanly (``needs_rl_parquet``, ``needs_speech_clips``,
``needs_official_eval``) where they are absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RL_PARQUET = Path(__file__).resolve().parents[2] / "shared/data/EVAds_RL.parquet"
needs_rl_parquet = pytest.mark.skipif(not RL_PARQUET.is_file(),
                                      reason=f"{RL_PARQUET} not present")
SPEECH_DIR = Path(__file__).resolve().parents[2] / "shared/data/speech"
needs_speech_clips = pytest.mark.skipif(not (SPEECH_DIR / "transcripts.jsonl").is_file(),
                                        reason=f"{SPEECH_DIR}/transcripts.jsonl not present")
# The authors' public evaluation script, beside the checkout as the RL split is.
OFFICIAL_EVAL = Path(__file__).resolve().parents[2] / "shared/E-VAds_Benchmark"
OFFICIAL_SCRIPT = OFFICIAL_EVAL / "evaluation/eval_qwen3vl_8b.py"
needs_official_eval = pytest.mark.skipif(not OFFICIAL_SCRIPT.is_file(),
                                         reason=f"{OFFICIAL_SCRIPT} not present")
