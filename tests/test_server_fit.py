"""Fitting servers nobody here wrote, on the loopback server scripted with their answers
(``tests/judge_server.py``: llama-cpp-python's json_schema refusal, vLLM's context-length
400, one slot): the response_format fallback, the budget clipped to the context, the
concurrency that backs off, the timing preflight, the evads judge's budget, the official
protocol's counts, and the generator's truthful exit. The same behaviours against real
servers: ``tests/test_real_server.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from judge_server import JudgeServer
from paths import REPO
from qa_llm_server import ScriptedAdLLM

from evads_tasks.core.chat.client import ChatClient, ChatError
from evads_tasks.core.chat.concurrency import AdaptiveLimit
from evads_tasks.core.chat.preflight import CallTiming, preflight_lines
from evads_tasks.core.chat.response_format import CAPABILITY, StructuredOutput
from evads_tasks.core.chat.server_fit import (
    ContextOverflow,
    context_from_models,
    fitted_max_tokens,
    parse_context_error,
    refused_parameter,
)
from evads_tasks.core.judge import HttpJudge, JudgeCache, JudgeRequest, judge_from_env

SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic_eval_script.py"
MESSAGES = [{"role": "system", "content": "Judge."}, {"role": "user", "content": "x" * 400}]
REQUEST = JudgeRequest(question="价格是多少？", metadata="Time 1s: OCR Text: [59.9元]",
                       clues="1s", reference="59.9元", answer="59.9元")


# ---- what servers say, read ---------------------------------------------------------------

@pytest.mark.parametrize("text, window, prompt", [
    # vLLM, OpenAI and llama-cpp-python (its own wording for a prompt over the context)
    ("This model's maximum context length is 1024 tokens. However, you requested 9422 tokens "
     "(1422 in the messages, 8000 in the completion). Please reduce the length of the "
     "messages or completion.", 1024, 1422),
    # llama.cpp's server: the prompt alone does not fit
    ('{"error":{"code":400,"message":"request (3032 tokens) exceeds the available context '
     'size (2048 tokens), try increasing it","type":"exceed_context_size_error",'
     '"n_prompt_tokens":3032,"n_ctx":2048}}', 2048, 3032),
    # newer vLLM
    ("'max_tokens' is too large: 8000. This model's maximum context length is 9000 tokens "
     "and your request has 1422 input tokens (8000 > 9000 - 1422).", 9000, 1422),
    # llama-cpp-python's inner error, before its server rewords it
    ("Requested tokens (3032) exceed context window of 2048", 2048, None),
])
def test_context_errors_of_real_servers_are_read(text, window, prompt):
    assert parse_context_error(text) == ContextOverflow(window, prompt)


def test_what_is_not_a_context_error_or_a_refusal():
    assert parse_context_error("HTTP 400: invalid model name") is None
    assert parse_context_error(None) is None
    body = {"model": "m", "messages": [], "response_format": {"type": "json_schema"}}
    refusal = "1 validation error: ('body', 'response_format', 'type') Input should be 'text'"
    assert refused_parameter(500, refusal, body) == "response_format"
    assert refused_parameter(400, "Invalid value for 'type'", body) == "response_format"
    assert refused_parameter(422, "unprocessable", body) == "response_format"
    assert refused_parameter(500, "CUDA out of memory", body) is None   # a transient 5xx
    assert refused_parameter(401, "response_format bad key", body) is None
    assert refused_parameter(400, "maximum context length is 10 tokens", body) is None
    assert refused_parameter(500, refusal, {"model": "m", "messages": []}) is None


def test_the_context_window_listed_by_vllm_and_llama_cpp():
    vllm = {"object": "list", "data": [{"id": "Qwen/Qwen2.5-7B", "max_model_len": 32768}]}
    llama_cpp = {"data": [{"id": "smollm2", "aliases": ["smollm2"],
                           "meta": {"n_ctx": 2048, "n_ctx_train": 8192}}]}
    openai = {"data": [{"id": "gpt-4o", "object": "model"}, {"id": "gpt-4o-mini"}]}
    assert context_from_models(vllm, "Qwen/Qwen2.5-7B") == 32768
    assert context_from_models(llama_cpp, "any-name") == 2048  # llama.cpp answers any name
    assert context_from_models(openai, "gpt-4o") is None
    assert context_from_models({"error": "no"}, "x") is None
    assert fitted_max_tokens(8000, 9500, 1422) == 8000  # the authors' 8000 where it fits
    assert fitted_max_tokens(8000, 2048, 1422) == 2048 - 1422 - 16
    assert fitted_max_tokens(8000, 1024, 1422) is None   # the prompt alone does not fit


# ---- the chat client fits the budget ------------------------------------------------------

def test_budget_refit_after_a_context_error_then_fitted_from_the_start():
    """A vLLM-like server that rejects prompt + budget over its window: the first call is
    sent once more with the budget that fits, the next ones fit from the start."""
    with JudgeServer(lambda messages: "Answer: 1", context_window=2048) as server, \
            ChatClient(server.url, "m", concurrency=1) as chat:
        assert chat.complete(MESSAGES, max_tokens=8000).content == "Answer: 1"
        assert chat.complete(MESSAGES, max_tokens=8000).attempts == 1
        sent = [request["max_tokens"] for request in server.requests]
        fit = chat.server_fit()
    assert sent[0] == 8000 and sent[1] == sent[2] < 2048 - 100 and len(sent) == 3
    assert fit["context_window"] == 2048 and fit["context_source"] == "a context-length error"
    assert "max_tokens 8000 was clipped to" in chat.server_notes()[0]


def test_budget_fitted_from_get_models_without_a_refused_call():
    with JudgeServer(lambda messages: "ok", context_window=2048, list_context=True) as server, \
            ChatClient(server.url, "m", concurrency=1) as chat:
        chat.complete(MESSAGES, max_tokens=8000)
        chat.complete(MESSAGES, max_tokens=100)  # fits: sent as asked
        sent = [request["max_tokens"] for request in server.requests]
    assert sent[0] < 2048 and sent[1] == 100 and len(sent) == 2
    assert chat.server_fit()["context_source"] == "GET /models"


def test_a_prompt_longer_than_the_context_fails_at_once_as_a_context_error():
    with JudgeServer(lambda messages: "ok", context_window=50) as server, \
            ChatClient(server.url, "m", max_attempts=6) as chat:
        with pytest.raises(ChatError) as raised:
            chat.complete(MESSAGES, max_tokens=10)
        assert server.calls == 1  # not retried: no retry shortens a prompt
    assert raised.value.fatal and raised.value.overflow.window == 50
    assert "does not fit the server's context of 50 tokens" in str(raised.value)


# ---- response_format falls back once per server and model ---------------------------------

def test_response_format_falls_back_once_for_calls_in_flight(tmp_path):
    """Eight threads ask at once a server that refuses json_schema and json_object: two
    refused requests in all, every call answered, the mode kept in the cache file."""
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    cache = JudgeCache(tmp_path)
    with JudgeServer(lambda messages: '{"a": 1}',
                     refuse_formats=("json_schema", "json_object")) as server, \
            ChatClient(server.url, "m", concurrency=8) as chat:
        def remember(mode: str, detail: str) -> None:
            cache.put_capability("m", chat.endpoint, CAPABILITY, mode, detail)

        structured = StructuredOutput("json_schema", None, remember)

        def send(mode: str) -> str:
            fmt = {"json_schema": {"type": "json_schema", "json_schema": {"schema": schema}},
                   "json_object": {"type": "json_object", "schema": schema}}.get(mode)
            return chat.complete(MESSAGES, **({"response_format": fmt} if fmt else {})).content

        replies: list[str] = []
        threads = [threading.Thread(target=lambda: replies.append(structured.call(send)))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        refused = server.refused
        remembered = cache.get_capability("m", chat.endpoint, CAPABILITY)
        again = StructuredOutput("json_schema", remembered)
        again.call(send)
        refused_again = server.refused - refused
    assert replies == ['{"a": 1}'] * 8 and refused == 2 and refused_again == 0
    assert structured.describe()["used"] == "none" and remembered[0] == "none"
    assert [r["mode"] for r in json.loads(remembered[1])] == ["json_schema", "json_object"]
    assert again.describe()["remembered"] and "json_schema" in again.describe()["refusals"][0][
        "mode"]
    cache.close()


# ---- concurrency backs off when calls queue ------------------------------------------------

def test_adaptive_limit_halves_on_a_slow_call_once_per_generation_and_grows_back():
    limit = AdaptiveLimit(16, timeout_s=10)
    slots = [limit.acquire() for _ in range(6)]
    limit.release(slots[0], 6.0)          # over half the timeout: 6 in flight -> 3
    assert limit.limit == 3
    limit.release(slots[1], None, congested=True)   # started before the decrease: no change
    assert limit.limit == 3
    for slot in slots[2:]:
        limit.release(slot, 1.0)
    later = limit.acquire()
    limit.release(later, 9.0)             # a later generation's slow call: 1 in flight -> 1
    assert limit.limit == 1 and limit.lowest == 1
    for _ in range(3):                    # healthy calls (under a quarter of the timeout)
        limit.release(limit.acquire(), 0.5)
    assert limit.limit == 3 and "backed off 2 time(s)" in limit.describe()


def test_a_one_slot_server_gets_fewer_calls_in_flight_and_every_verdict(tmp_path):
    """Eight calls at once on one slot at 0.2 s a call, with a 1 s timeout: the calls at the
    end of the queue would wait 1.6 s. The judge backs off and every verdict comes."""
    requests = [JudgeRequest(question=f"问题{i}", metadata="m", clues="c", reference="答案",
                             answer="答案") for i in range(8)]
    with JudgeServer(latency_s=0.2, slots=1) as server, \
            HttpJudge(server.url, "m", cache_dir=tmp_path, concurrency=8, timeout_s=1.0,
                      backoff_base_s=0.2, progress=False) as judge:
        results = judge.judge_many(requests)
        fit = judge.settings()["server_fit"]
    assert [r.score for r in results] == [1.0] * 8
    assert fit["concurrency_lowest"] < 8


# ---- the judge -----------------------------------------------------------------------------

def test_the_evads_judge_sends_a_budget_that_a_setting_changes(tmp_path):
    with JudgeServer() as server:
        env = {"EVADS_JUDGE_BASE_URL": server.url, "EVADS_JUDGE_MODEL": "m"}
        for extra, budget in (({}, 1024), ({"EVADS_JUDGE_MAX_TOKENS": "64"}, 64)):
            judge = judge_from_env(tmp_path / str(budget), env={**env, **extra})
            assert judge.judge(REQUEST).score == 1.0
            judge.close()
            assert server.requests[-1]["max_tokens"] == budget
            assert server.requests[-1]["temperature"] == 0


def test_a_repeated_unparseable_reply_at_temperature_0_is_not_asked_again(tmp_path):
    with JudgeServer(lambda messages: "I cannot decide.") as server, \
            HttpJudge(server.url, "m", cache_dir=tmp_path, unparseable_attempts=6,
                      progress=False) as judge:
        result = judge.judge(REQUEST)
    assert result.score is None and result.calls == server.calls == 2
    assert "the judge gave the same reply twice at temperature 0" in result.error


def _judge_cli(tmp_path: Path, env: dict, requests: list[JudgeRequest],
               *flags: str) -> subprocess.CompletedProcess:
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r.__dict__, ensure_ascii=False) + "\n"
                            for r in requests), encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "evads_tasks", "judge", "--requests",
                           str(path), "--out", str(tmp_path / "out.jsonl"), *flags],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    return {**env, **extra}


def test_the_official_judge_cli_counts_an_empty_answer_as_judged(tmp_path):
    """The official protocol sends every answer, an empty one too: three failed requests
    are three failures of three (it once printed "1 judged, 2 failed" and "2 of 2")."""
    requests = [REQUEST, JudgeRequest(**{**REQUEST.__dict__, "answer": "59.9"}),
                JudgeRequest(**{**REQUEST.__dict__, "answer": ""})]
    with JudgeServer(faults=lambda i: "500") as server:
        done = _judge_cli(tmp_path, _env(
            EVADS_JUDGE_BASE_URL=server.url, EVADS_PROTOCOL="official",
            EVADS_OFFICIAL_EVAL=str(SYNTHETIC), EVADS_CACHE_DIR=str(tmp_path / "cache")),
            requests)
    assert done.returncode == 3, done.stderr
    assert "3 requests, 0 scored by rule, 0 in the cache, 3 to judge" in done.stderr
    assert "0 judged, 3 failed, 0 from cache, 0 scored by rule" in done.stderr
    assert "the judge failed on 3 of 3 judged answers" in done.stderr


def test_the_preflight_times_one_call_projects_the_run_and_warns(tmp_path):
    """One slot, 0.3 s a call, a 0.5 s timeout, concurrency 4: the timed call is over half
    the timeout and four queued calls would wait 1.2 s; --dry-run says so and writes no
    verdicts file; the run then pays for no call twice."""
    requests = [JudgeRequest(**{**REQUEST.__dict__, "question": f"问题{i}"}) for i in range(4)]
    with JudgeServer(latency_s=0.3, slots=1,
                     usage=lambda i, text: {"prompt_tokens": 300, "completion_tokens": 12}
                     ) as server:
        env = _env(EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL="m",
                   EVADS_JUDGE_TIMEOUT="0.5", EVADS_JUDGE_CONCURRENCY="4",
                   EVADS_CACHE_DIR=str(tmp_path / "cache"))
        dry = _judge_cli(tmp_path, env, requests, "--dry-run")
        after_dry, written = server.calls, (tmp_path / "out.jsonl").exists()
        done = _judge_cli(tmp_path, {**env, "EVADS_JUDGE_TIMEOUT": "5"}, requests)
        calls = server.calls
    assert dry.returncode == 0 and not written
    assert "4 requests, 0 scored by rule, 0 in the cache, 4 to judge" in dry.stderr
    assert "(300 prompt + 12 completion tokens" in dry.stderr
    assert "projected for 4 call(s) at concurrency 4" in dry.stderr
    assert "over half of the 0.5 s timeout" in dry.stderr
    assert "the last of 4 calls in flight would wait" in dry.stderr
    assert after_dry == 1 and done.returncode == 0, done.stderr
    assert "1 in the cache, 3 to judge" in done.stderr and calls == 1 + 3
    assert "4 judged, 0 failed, 1 from cache" in done.stderr


def test_preflight_lines_for_a_timed_out_call():
    lines = preflight_lines("m @ u", CallTiming(120.0, 1, error="timeout: no complete reply "
                                                "within 120s"), 50, 16, 120, "EVADS_JUDGE_TIMEOUT")
    assert "failed after 2.0 min" in lines[0]
    assert "did not finish within the 120 s timeout" in lines[1]
    assert "Raise EVADS_JUDGE_TIMEOUT" in lines[1]


# ---- the generator -------------------------------------------------------------------------

def _generate(source: Path, out: Path, url: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evads_generate", str(source), "--out", str(out),
         "--llm-base-url", url, "--llm-model", "scripted-ad-llm", "--no-progress", *flags],
        cwd=REPO, env=_env(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1"),
        capture_output=True, text=True, timeout=600)


def test_generator_falls_back_from_a_refused_json_schema_and_remembers(sample_dir, tmp_path):
    """The server answers json_schema with llama-cpp-python's HTTP 500: the full set of
    questions after one refused request, the report names the fallback, and a rerun (same
    server, same cache) starts at json_object."""
    source = sample_dir / "annotations" / "test.parquet"
    policy = ScriptedAdLLM(sample_dir / "script.json")
    out = tmp_path / "out"
    with JudgeServer(policy, refuse_formats=("json_schema",)) as server:
        first = _generate(source, out, server.url)
        refused = server.refused
        again = _generate(source, out, server.url, "--fresh")
        refused_again = server.refused - refused
        shapes = {json.dumps(r.get("response_format", {}).get("type")) for r in
                  server.requests if "You design test questions" in r["messages"][0]["content"]}
    assert first.returncode == 0, first.stderr[-3000:]
    assert "35 questions for 7 videos" in first.stdout
    assert refused == 1 and refused_again == 0 and again.returncode == 0
    assert shapes == {'"json_schema"', '"json_object"'}
    report = (out / "report.md").read_text(encoding="utf-8")
    assert ("role replies asked for with response_format json_object with the schema (in "
            "its `schema` field and in the prompt), instead of json_schema: the server "
            "refused json_schema (HTTP 500") in report
    assert "remembered from an earlier run in this cache" in report
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["run"]["structured_output"]["used"] == "json_object"


def test_generator_exits_4_with_the_counts_when_no_reply_is_valid(sample_dir, tmp_path):
    policy = ScriptedAdLLM(sample_dir / "script.json")

    def prose(messages: list[dict]) -> str:
        if "You design test questions" in str(messages[0]["content"]):
            return "Here are some great questions about this ad! 1. What is the price?"
        return policy(messages)

    with JudgeServer(prose) as server:
        done = _generate(sample_dir / "annotations" / "test.parquet", tmp_path / "out",
                         server.url, "--limit", "2")
    assert done.returncode == 4, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 20 of 20 role replies failed (100%, above "
                           "--max-reply-error-rate 0.25): invalid_json 20; first error: "
                           "ad_01/r1/"), last
    assert "0 questions for 0 videos" in done.stdout


def test_generator_fits_a_small_context_and_fails_only_what_cannot_fit(sample_dir, tmp_path):
    """A vLLM-like server with a 3,000-token window: the proposals' 4096-token budget is
    clipped (the run completes, the report says so); with a 700-token window no proposal
    prompt fits: each fails as context_length and the run ends with the counts, not with
    the first error (it once exited 2 in 4 s)."""
    source = sample_dir / "annotations" / "test.parquet"
    policy = ScriptedAdLLM(sample_dir / "script.json", faults=False)
    with JudgeServer(policy, context_window=3000) as server:
        fits = _generate(source, tmp_path / "fits", server.url, "--limit", "2")
    assert fits.returncode == 0, fits.stderr[-3000:]
    assert "10 questions for 2 videos" in fits.stdout
    report = (tmp_path / "fits" / "report.md").read_text(encoding="utf-8")
    assert "max_tokens 4096 was clipped to" in report and "context of 3000 tokens" in report
    with JudgeServer(policy, context_window=700) as server:
        small = _generate(source, tmp_path / "small", server.url, "--limit", "2")
    assert small.returncode == 4, small.stderr[-3000:]
    # two videos, five roles, two rounds (the second asks again for the unfilled tasks)
    assert "20 of 20 role replies failed (100%, above --max-reply-error-rate 0.25): " \
           "context_length 20" in small.stderr


def test_a_rescore_records_the_budget_clipped_to_the_servers_context(sample_dir, tmp_path):
    """The run description of the results says when the judge's budget was clipped."""
    import pandas as pd

    rows = pd.read_parquet(sample_dir / "annotations" / "test.parquet").head(3)
    rows["prediction"] = "<answer>" + rows["answer"] + "</answer>"
    source = tmp_path / "final_results.csv"
    rows.to_csv(source, index=False)
    with JudgeServer(context_window=3000) as server:
        done = subprocess.run(
            [sys.executable, "-m", "evads_tasks", "rescore", str(source), "--out",
             str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=300,
            env=_env(EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL="m",
                     EVADS_JUDGE_MAX_TOKENS="8000", EVADS_CACHE_DIR=str(tmp_path / "cache")))
        sent = [r["max_tokens"] for r in server.requests]
    assert done.returncode == 0, done.stderr
    assert sent[0] == 8000 and all(n < 3000 for n in sent[1:])  # one 400, then fitted
    results = json.loads(next((tmp_path / "out").glob("*_results.json")).read_text())
    described = {v["evads_run,none"] for v in results["results"].values()}
    assert all("max_tokens clipped to fit the server's 3000-token context" in d
               for d in described), described
    settings = results["evads"]["rescore"]["judge_settings"]
    assert settings["server_fit"]["context_source"] == "a context-length error"


def test_preflight_projection_at_concurrency_1_and_16():
    timing = CallTiming(3.0, 1, 400, 30)
    one = preflight_lines("m @ u", timing, 40, 1, 120, "--timeout")
    many = preflight_lines("m @ u", timing, 40, 16, 120, "--timeout")
    assert one[0] == "preflight: one timed call to m @ u: 3.0 s (400 prompt + 30 completion " \
                     "tokens, 10.0 completion tokens/s)"
    assert one[1] == "  projected for 40 call(s) one at a time: ~2.0 min" and len(one) == 2
    assert many[1] == ("  projected for 40 call(s) at concurrency 16: ~9.0 s if the server "
                       "serves 16 calls at once, ~2.0 min if it serves one at a time")
    assert len(many) == 2  # no warning: 16 queued calls wait 48 s, inside the 120 s timeout
    assert "the last of 16 calls in flight would wait ~1.6 min, past the 60 s timeout" in \
        preflight_lines("m @ u", CallTiming(6.0, 1), 40, 16, 60, "--timeout")[2]
