"""The judge, the Q&A generator, rescore and the timing preflight against real
OpenAI-compatible servers nobody here wrote, serving a real small model
(``tests/real_server.py``: llama.cpp's server from the xllamacpp wheel, always; llama-cpp-
python's when ``make real-server-check`` built it), through the commands users run.

SmolLM2-135M is a real model but a poor judge and a poor question writer: the tests check
what evads does with a real server's replies, limits and timings (the budget it sends and
clips, the refusals it falls back from, the counts and exit statuses it reports), never
the scores or questions, which mean nothing. Each server has one slot and one thread, so
every test keeps its calls few and short.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from paths import REPO
from real_server import (
    MODEL_NAME,
    llama_cpp_python,
    llama_cpp_python_server,
    llama_server,
    model_path,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(model_path() is None,
                       reason="the real-server model is missing: make real-server-model"),
]
xllamacpp = pytest.importorskip("xllamacpp", reason="xllamacpp (llama.cpp's server) is not "
                                                    "installed: make install")
SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic_eval_script.py"
# Three requests in English (a short prompt for a 2-core CPU): two answers and an empty one.
REQUESTS = [
    {"question": "What is the price of the T-shirt in the ad?",
     "metadata": 'Time 7s: OCR Text: [69.9 yuan | buy one get one] ; ASR Text: "only 69.9"',
     "clues": "price card at 7 s", "reference": "69.9 yuan, buy one get one.",
     "answer": "It costs 69.9 yuan."},
    {"question": "Who is the ad for?", "metadata": 'Time 1s: OCR Text: [Tired of sweat?]',
     "clues": "opening line", "reference": "People who sweat a lot in summer.",
     "answer": "Office workers."},
    {"question": "Is 'the best shirt ever' a compliant claim?", "metadata": "",
     "clues": "", "reference": "No: an absolute claim.", "answer": ""},
]
PREFLIGHT = re.compile(r"preflight: one timed call to (\S+) @ (\S+)[^:]*: ([\d.]+ (?:s|min)) "
                       r"\((\d+) prompt \+ (\d+) completion tokens, [\d.]+ completion tokens/s\)")
# A judge whose every call overran its budget would say so here: only a model's own replies
# may fail (an unparseable verdict), never the transport.
TRANSPORT = ("timeout", "connection error", "HTTP 5", "retry budget")


@pytest.fixture(scope="module")
def server():
    """llama.cpp's server with a 2048-token context (one slot)."""
    with llama_server(model_path(), n_ctx=2048) as running:
        yield running


@pytest.fixture(scope="module")
def small_server():
    """llama.cpp's server with a 512-token context: the generator's prompts do not fit."""
    with llama_server(model_path(), n_ctx=512) as running:
        yield running


def _env(tmp_path: Path, url: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    return {**env, "EVADS_JUDGE_BASE_URL": url, "EVADS_JUDGE_MODEL": MODEL_NAME,
            "EVADS_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", **extra}


def _run(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    print(f"$ {' '.join(args[:3])} ... -> {done.returncode}\n{done.stdout[-1500:]}"
          f"{done.stderr[-2500:]}")
    return done


def _judge(tmp_path: Path, env: dict, *flags: str,
           requests: list[dict] = REQUESTS) -> tuple[subprocess.CompletedProcess, list]:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in requests), encoding="utf-8")
    out = tmp_path / "verdicts.jsonl"
    done = _run(["-m", "evads_tasks", "judge", "--requests", str(path), "--out", str(out),
                 *flags], env)
    verdicts = [json.loads(line) for line in out.read_text().splitlines()] \
        if out.exists() else []
    return done, verdicts


def _preflight(text: str) -> re.Match:
    match = PREFLIGHT.search(text)
    assert match, text[-3000:]
    return match


def test_evads_judge_sends_its_budget_and_counts_an_empty_answer_by_rule(server, tmp_path):
    env = _env(tmp_path, server.url, EVADS_JUDGE_MAX_TOKENS="32")
    done, verdicts = _judge(tmp_path, env)
    assert done.returncode in (0, 3), done.stderr
    assert "3 requests, 1 scored by rule, 0 in the cache, 2 to judge" in done.stderr
    preflight = _preflight(done.stderr)
    assert preflight.group(1) == MODEL_NAME and int(preflight.group(5)) <= 32
    assert "projected for 2 call(s) at concurrency 16" in done.stderr
    assert len(verdicts) == 3 and verdicts[2]["score"] == 0 and verdicts[2]["calls"] == 0
    for verdict in verdicts[:2]:
        # the real server honoured the budget sent: at most 32 tokens a call
        assert verdict["completion_tokens"] <= 32 * max(verdict["calls"], 1)
        assert verdict["score"] is not None or not any(
            word in verdict["error"] for word in TRANSPORT), verdict["error"]
    failed = sum(v["score"] is None for v in verdicts)
    assert f"{2 - failed} judged, {failed} failed, 0 from cache, 1 scored by rule" \
        in done.stderr
    assert (done.returncode == 3) == (failed > 0)


def test_official_judge_budget_is_clipped_to_the_servers_context(small_server, tmp_path):
    """The authors' call asks for 8000 tokens; llama.cpp's 512-token context (read from
    GET /models) cannot hold them, and llama.cpp would silently generate to its end: the
    budget is clipped and the run says so. The empty answer is judged too (their rule)."""
    script = tmp_path / "eval_script.py"
    script.write_text(SYNTHETIC.read_text(encoding="utf-8").replace(
        "max_tokens=321", "max_tokens=8000").replace("timeout=9", "timeout=120"),
        encoding="utf-8")
    env = _env(tmp_path, small_server.url, EVADS_PROTOCOL="official",
               EVADS_OFFICIAL_EVAL=str(script))
    done, verdicts = _judge(tmp_path, env)
    assert done.returncode in (0, 3), done.stderr
    assert "3 requests, 0 scored by rule, 0 in the cache, 3 to judge" in done.stderr
    clipped = re.search(r"note: max_tokens 8000 was clipped to ([\d-]+) in (\d+) call\(s\) to "
                        r"fit the server's context of 512 tokens \(from GET /models\)",
                        done.stderr)
    assert clipped, done.stderr
    assert all(int(n) < 512 for n in clipped.group(1).split("-"))
    failed = sum(v["score"] is None for v in verdicts)
    assert f"{3 - failed} judged, {failed} failed, 0 from cache, 0 scored by rule" \
        in done.stderr
    if failed:  # counted over all three: the official protocol judges the empty answer
        assert f"failed on {failed} of 3 judged answers" in done.stderr
    for verdict in verdicts:
        assert (verdict["completion_tokens"] or 0) < 512 * max(verdict["calls"], 1)
        # at most the protocol's tries (6: the default, above the script's 3); fewer when
        # the model repeated an unparseable reply word for word
        assert 1 <= verdict["calls"] <= 6


def _generate(out: Path, url: str, env: dict, *flags: str) -> subprocess.CompletedProcess:
    return _run(["-m", "evads_generate", str(REPO / "data/sample/annotations/test.parquet"),
                 "--out", str(out), "--llm-base-url", url, "--llm-model", MODEL_NAME,
                 "--language", "en", "--no-progress", "--limit", "1", "--rounds", "1",
                 *flags], env)


def test_generator_exits_non_zero_with_the_counts_when_replies_fail(server, sample_dir,
                                                                     tmp_path):
    """Proposals cut at 48 tokens cannot hold five candidates: a real model's replies
    fail, and the run says how instead of exiting 0 with no question."""
    env = _env(tmp_path, server.url)
    env.pop("EVADS_JUDGE_BASE_URL")
    done = _generate(tmp_path / "out", server.url, env, "--max-tokens", "48")
    assert done.returncode == 4, done.stderr
    preflight = _preflight(done.stderr)
    assert "a proposal for video ad_01" in done.stderr and int(preflight.group(5)) <= 48
    assert "role replies will be asked for with response_format json_schema" in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and ("of 5 role replies failed" in last
                                           or "no question was written" in last), last
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "role replies asked for with response_format json_schema" in report


def test_a_context_error_fails_its_calls_not_the_generator_run(small_server, sample_dir,
                                                                tmp_path):
    """Every proposal prompt (~1,200 tokens) overflows a 512-token context: llama.cpp
    answers 400 for each; each reply fails on its own and the run ends with the counts."""
    env = _env(tmp_path, small_server.url)
    env.pop("EVADS_JUDGE_BASE_URL")
    done = _generate(tmp_path / "out", small_server.url, env)
    assert done.returncode == 4, done.stderr
    assert "5 of 5 role replies failed (100%, above --max-reply-error-rate 0.25): " \
           "context_length 5" in done.stderr
    assert "exceeds the available context size" in done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["reply_errors"] == {"context_length": 5}


def test_rescore_with_a_real_judge_and_its_preflight(server, sample_dir, tmp_path):
    rows = pd.read_parquet(sample_dir / "annotations" / "test.parquet").head(2)
    rows["question"] = ["What does the ad sell?", "How much is it?"]
    rows["answer"] = ["A T-shirt.", "69.9 yuan."]
    rows["asr_ocr_meta"] = 'Time 7s: OCR Text: [69.9 yuan] ; ASR Text: "a soft T-shirt"'
    rows["prediction"] = ["<answer>a T-shirt</answer>", "<answer>70 yuan</answer>"]
    source = tmp_path / "final_results.csv"
    rows.to_csv(source, index=False)
    env = _env(tmp_path, server.url, EVADS_JUDGE_MAX_TOKENS="32")
    out = tmp_path / "rescored"
    dry = _run(["-m", "evads_tasks", "rescore", str(source), "--out", str(out), "--dry-run"],
               env)
    assert dry.returncode == 0, dry.stderr
    assert "judge calls       2" in dry.stdout
    preflight = _preflight(dry.stdout)
    assert int(preflight.group(5)) <= 32
    assert not out.exists() or not list(out.glob("*_results.json"))
    done = _run(["-m", "evads_tasks", "rescore", str(source), "--out", str(out)], env)
    assert done.returncode in (0, 3), done.stderr
    assert "2 judged now" in done.stdout and "preflight: one timed call" in done.stderr
    assert list(out.glob("*_results.json"))


needs_llama_cpp_python = pytest.mark.skipif(
    llama_cpp_python() is None, reason="no llama-cpp-python server: make real-server-check "
                                       "builds one (or set EVADS_LLAMA_CPP_PYTHON)")


@needs_llama_cpp_python
def test_generator_falls_back_from_json_schema_on_llama_cpp_python(sample_dir, tmp_path):
    """llama-cpp-python answers json_schema with HTTP 500: the run asks once, moves to
    json_object with the schema, says so, and a rerun starts there."""
    env = _env(tmp_path, "unused")
    env.pop("EVADS_JUDGE_BASE_URL")
    with llama_cpp_python_server(llama_cpp_python(), model_path(), n_ctx=2048) as running:
        out = tmp_path / "out"
        flags = ("--max-tokens", "48", "--concurrency", "1", "--timeout", "300")
        first = _generate(out, running.url, env, *flags)
        refused_first = sum(" 500 " in line for line in running.log)
        again = _generate(out, running.url, env, *flags, "--fresh")
        refused_again = sum(" 500 " in line for line in running.log) - refused_first
        print("\n".join(running.log[-30:]))
    assert first.returncode == 4 and again.returncode == 4, first.stderr + again.stderr
    assert "the server refused response_format json_schema" in first.stderr
    assert "Input should be 'text' or 'json_object'" in first.stderr
    assert refused_first == 1 and refused_again == 0, running.log[-40:]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "json_object with the schema" in report and "remembered from an earlier run" \
        in report


@needs_llama_cpp_python
def test_a_prompt_over_llama_cpp_pythons_context_fails_that_answer_alone(tmp_path):
    """llama-cpp-python lists no context in GET /models, clips a budget that does not fit on
    its own, and answers a prompt longer than its context with a 400 naming the window:
    that answer fails at once (no retry can shorten it), the others are judged, and from
    then on the authors' 8000 is clipped to fit, as the run says."""
    script = tmp_path / "eval_script.py"
    script.write_text(SYNTHETIC.read_text(encoding="utf-8").replace(
        "max_tokens=321", "max_tokens=8000").replace("timeout=9", "timeout=120"),
        encoding="utf-8")
    long = {**REQUESTS[0], "metadata": "Time 1s: OCR Text: [a long caption] ; " * 120}
    with llama_cpp_python_server(llama_cpp_python(), model_path(), n_ctx=512) as running:
        env = _env(tmp_path, running.url, EVADS_PROTOCOL="official",
                   EVADS_OFFICIAL_EVAL=str(script), EVADS_JUDGE_CONCURRENCY="1")
        done, verdicts = _judge(tmp_path, env, requests=[long, *REQUESTS[:2]])
        overflows = sum(" 400 " in line for line in running.log)
    assert done.returncode == 3, done.stderr
    assert "the timed call's prompt does not fit the server's context" in done.stderr
    assert "This model's maximum context length is 512 tokens" in verdicts[0]["error"]
    assert verdicts[0]["calls"] == 1 and overflows == 2  # the preflight's and the run's
    assert all(v["calls"] >= 1 and "context" not in (v["error"] or "") for v in verdicts[1:])
    assert re.search(r"note: max_tokens 8000 was clipped to [\d-]+ in \d+ call\(s\) to fit the "
                     r"server's context of 512 tokens \(from a context-length error\)",
                     done.stderr), done.stderr
