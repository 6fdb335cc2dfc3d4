"""judge_from_env: the configured endpoint, the explicit fallback, or a clear error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from evads_tasks.core.judge import (
    HttpJudge,
    JudgeConfigError,
    SimilarityJudge,
    default_cache_dir,
    judge_from_env,
)

VARIABLES = ("EVADS_JUDGE", "EVADS_JUDGE_BASE_URL", "EVADS_JUDGE_MODEL", "EVADS_JUDGE_API_KEY",
             "EVADS_JUDGE_CONCURRENCY", "EVADS_JUDGE_TIMEOUT", "EVADS_JUDGE_MAX_ATTEMPTS",
             "EVADS_CACHE_DIR", "EVADS_JUDGE_FALLBACK", "EVADS_PROTOCOL", "EVADS_OFFICIAL_EVAL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_unconfigured_is_a_clear_error() -> None:
    with pytest.raises(JudgeConfigError) as error:
        judge_from_env()
    for hint in ("EVADS_JUDGE_BASE_URL", "EVADS_JUDGE_MODEL", "EVADS_JUDGE=similarity"):
        assert hint in str(error.value)


def test_url_and_model_give_the_http_judge(clean_env: pytest.MonkeyPatch, tmp_path: Path):
    clean_env.setenv("EVADS_JUDGE_BASE_URL", "https://user:pw@dashscope.example.com/v1/")
    clean_env.setenv("EVADS_JUDGE_MODEL", "qwen-plus")
    clean_env.setenv("EVADS_JUDGE_API_KEY", "sk-env-secret")
    clean_env.setenv("EVADS_JUDGE_CONCURRENCY", "4")
    clean_env.setenv("EVADS_CACHE_DIR", str(tmp_path / "c"))
    judge = judge_from_env()
    assert isinstance(judge, HttpJudge)
    assert judge.name == "qwen-plus @ https://dashscope.example.com/v1"
    assert judge.concurrency == 4
    assert judge.cache.path.parent == tmp_path / "c"
    assert "sk-env-secret" not in repr(judge) and "pw" not in judge.name
    judge.close()


def test_similarity_only_when_asked_even_with_a_url(clean_env: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    clean_env.setenv("EVADS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("EVADS_JUDGE_MODEL", "m")
    http = judge_from_env(tmp_path)
    assert isinstance(http, HttpJudge)
    http.close()
    clean_env.setenv("EVADS_JUDGE", "similarity")
    fallback = judge_from_env(tmp_path)
    assert isinstance(fallback, SimilarityJudge)
    assert fallback.name == "similarity (offline fallback, not the paper's judge)"


@pytest.mark.parametrize(("variables", "message"), [
    ({"EVADS_JUDGE_BASE_URL": "http://h/v1"}, "EVADS_JUDGE_MODEL is not"),
    ({"EVADS_JUDGE": "gpt"}, "is not a judge kind"),
    ({"EVADS_JUDGE": "http"}, "EVADS_JUDGE_BASE_URL is not set"),
    ({"EVADS_JUDGE_BASE_URL": "ftp://h", "EVADS_JUDGE_MODEL": "m"}, "http(s)://"),
    ({"EVADS_JUDGE_BASE_URL": "http://h/v1", "EVADS_JUDGE_MODEL": "m",
      "EVADS_JUDGE_CONCURRENCY": "zero"}, "EVADS_JUDGE_CONCURRENCY must be a positive int"),
])
def test_bad_settings_name_the_variable(clean_env: pytest.MonkeyPatch, tmp_path: Path,
                                        variables: dict[str, str], message: str) -> None:
    for name, value in variables.items():
        clean_env.setenv(name, value)
    with pytest.raises(JudgeConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        judge_from_env(tmp_path)


def test_default_cache_dir() -> None:
    assert default_cache_dir({}) == Path("~/.cache/evads/judge").expanduser()
    assert default_cache_dir({"EVADS_CACHE_DIR": "/x/y"}) == Path("/x/y")


def test_one_decision_for_every_caller(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """EVADS_JUDGE, else a URL, else the fallback (a training config's ``judge: similarity``
    or $EVADS_JUDGE_FALLBACK): the same order for the tasks, the CLI and MG-GRPO."""
    from evads_rl.judging import make_judge

    with pytest.raises(JudgeConfigError, match="no judge configured"):
        make_judge("env", tmp_path)
    assert isinstance(make_judge("similarity", tmp_path), SimilarityJudge)
    clean_env.setenv("EVADS_JUDGE_FALLBACK", "similarity")
    assert isinstance(judge_from_env(tmp_path), SimilarityJudge)
    clean_env.setenv("EVADS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("EVADS_JUDGE_MODEL", "m")
    for judge in (judge_from_env(tmp_path), make_judge("similarity", tmp_path)):
        assert isinstance(judge, HttpJudge)  # a configured URL wins over any fallback
        judge.close()
    clean_env.setenv("EVADS_JUDGE", "similarity")  # an explicit kind wins over the URL
    assert isinstance(make_judge("env", tmp_path), SimilarityJudge)
    assert isinstance(judge_from_env(tmp_path), SimilarityJudge)


def test_the_protocol_is_chosen_beside_the_judge(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("EVADS_PROTOCOL", "paper")
    clean_env.setenv("EVADS_JUDGE", "similarity")
    with pytest.raises(JudgeConfigError, match="EVADS_PROTOCOL='paper' is not a protocol"):
        judge_from_env()
    which = [sys.executable, "-m", "evads_tasks.core.judge", "--which"]
    env = {**os.environ, "EVADS_JUDGE_FALLBACK": "similarity"}
    env.pop("EVADS_PROTOCOL")
    env.pop("EVADS_JUDGE")
    done = subprocess.run(which, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ("judge: similarity (offline fallback, not the paper's "
                                   "judge); protocol: evads")
    refused = subprocess.run([*which, "--protocol", "official"], env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "EVADS_OFFICIAL_EVAL is not set" in refused.stderr
