"""The two protocols: the official one byte for byte against the authors' script, and the
right inputs (asr_input to the model, asr_ocr_meta to the judge) in both.

The reference for "what the authors' script sends" is the script's own code: the test runs
its JUDGE_PROMPT, its judge function (with a recording stand-in for the OpenAI client) and
the statements that build ``input_question`` (the project itself only parses the file).
Every check runs against a small synthetic script with the same names, and again against
the authors' copy in ``../shared/E-VAds_Benchmark`` when it is there.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from judge_server import JudgeServer
from make_runner import run_make
from paths import OFFICIAL_EVAL, OFFICIAL_SCRIPT, REPO, needs_official_eval

from evads_tasks.core.annotations import load_annotations, parse_rows, write_schema
from evads_tasks.core.annotations.schemas import TEST_COLUMNS
from evads_tasks.core.judge import JudgeConfigError, UnparseableReply, judge_from_env
from evads_tasks.core.judge.parsing import parse_authors_score
from evads_tasks.core.judge.prompts import SECTION_METADATA, read_sections
from evads_tasks.core.official_script import (
    CHECKED_SHA256,
    PUBLISHED_AT,
    OfficialScriptError,
    load_official_script,
)
from evads_tasks.runs.scored_runs import model_info
from evads_tasks.tasks import utils

SYNTHETIC = Path(__file__).parent / "fixtures" / "synthetic_eval_script.py"
# The functions of each script that hold the judge call and that build input_question.
SCRIPTS = {
    "synthetic": (SYNTHETIC, "score_with_judge", "run_one"),
    "authors": (OFFICIAL_SCRIPT, "get_llm_judge_score", "evaluate_model"),
}
ENV_NAMES = ("EVADS_JUDGE", "EVADS_JUDGE_MODEL", "EVADS_JUDGE_FALLBACK", "EVADS_PROMPT",
             "EVADS_JUDGE_MAX_ATTEMPTS", "EVADS_JUDGE_TIMEOUT", "EVADS_JUDGE_API_KEY")
OCR_ONLY = "¥59.9 限时特价"
# Test-schema rows whose asr_input (speech only) and asr_ocr_meta (OCR + speech) differ.
ROWS = [
    {"question": "视频中口红的价格是多少？", "answer": "59.9元，限时特价。",
     "ques_categories": "BP", "goods_category": "美容彩妆",
     "asr_input": 'Duration: 2s\n\n[Time-aligned Events]:\nTime 1s: ASR Text: "今天只要五十九块九"',
     "video_id": "101", "ques_id": "q-101-bp", "evidence": "1s字幕“{限时特价}”与口播一致",
     "asr_ocr_meta": ("Category: 美容彩妆\nDuration: 2s\n\n[Time-aligned Events]:\n"
                      f'Time 1s: OCR Text: [{OCR_ONLY}] ; ASR Text: "今天只要五十九块九"')},
    {"question": "Is 'the best lipstick ever' a compliant claim?", "answer": "No: an "
     "absolute claim.", "ques_categories": "Regulatory Compliance", "goods_category": "其他",
     "asr_input": 'Duration: 3s\n\n[Time-aligned Events]:\nTime 2s: ASR Text: "best ever"',
     "video_id": "102", "ques_id": "q-102-rc", "evidence": "",
     "asr_ocr_meta": ("Category: 其他\nDuration: 3s\n\n[Time-aligned Events]:\n"
                      'Time 2s: OCR Text: [BEST {EVER}] ; ASR Text: "best ever"')},
]
PREDICTIONS = [
    "<think>口播说五十九块九</think>\n<answer> 59.9元，限时特价。 </answer>",
    "It costs 59.9 yuan",
    "</answer>stray close, then <answer>the part after",
    "<answer>no closing tag",
    "",
]


class RecordingClient:
    """Stands in for ``openai.OpenAI`` in the authors' judge function: records each
    ``chat.completions.create`` call and answers with the scripted replies."""

    def __init__(self, replies: list[str]) -> None:
        self.calls: list[dict] = []
        self.replies = list(replies)
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self._create))

    def _create(self, **kwargs: object) -> SimpleNamespace:
        self.calls.append(kwargs)
        message = SimpleNamespace(content=self.replies.pop(0))
        return SimpleNamespace(choices=[SimpleNamespace(message=message)])


def reference(script: Path, judge_function: str, question_function: str) -> SimpleNamespace:
    """The script's own JUDGE_PROMPT and judge function, and a function running the
    statements of ``question_function`` that build ``input_question`` from a sample."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    prompt = [n for n in tree.body if isinstance(n, ast.Assign)
              and any(getattr(t, "id", None) == "JUDGE_PROMPT" for t in n.targets)]
    namespace: dict = {"time": SimpleNamespace(sleep=lambda seconds: None)}
    exec(compile(ast.Module([*prompt, functions[judge_function]], []), str(script), "exec"),
         namespace)
    builds = sorted((n for n in ast.walk(functions[question_function])
                     if isinstance(n, ast.Assign) and len(n.targets) == 1
                     and isinstance(n.targets[0], ast.Name)
                     and (n.targets[0].id == "input_question"
                          or isinstance(n.value, ast.Subscript)
                          and getattr(n.value.value, "id", None) == "sample")),
                    key=lambda n: n.lineno)
    code = compile(ast.Module(builds, []), str(script), "exec")

    def input_question(sample: dict) -> str:
        scope = {"sample": sample}
        exec(code, scope)
        return scope["input_question"]

    return SimpleNamespace(judge=namespace[judge_function], input_question=input_question)


def authors_sample(row: dict) -> dict:
    """A row as the authors' LocalDataset hands it over (``row.get(column, '')``)."""
    return {column: row.get(column, "") for column in TEST_COLUMNS}


@pytest.fixture(params=["synthetic", pytest.param("authors", marks=needs_official_eval)])
def script(request) -> tuple[Path, str, str]:
    return SCRIPTS[request.param]


@pytest.fixture()
def env(monkeypatch, tmp_path) -> pytest.MonkeyPatch:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
    return monkeypatch


def test_official_model_text_and_judge_request_equal_the_scripts(env, script):
    path, judge_function, question_function = script
    authors = reference(*script)
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_OFFICIAL_EVAL", str(path))
    records = parse_rows(ROWS, "rows.jsonl")
    with JudgeServer(lambda messages: "The answer is close.\nAnswer: 0.75") as server:
        env.setenv("EVADS_JUDGE_BASE_URL", server.url)
        for row, record in zip(ROWS, records, strict=True):
            doc = utils._doc(record, Path(f"/videos/{record.video_id}.mp4"), 0)
            sample = authors_sample(row)
            assert utils.doc_to_text(doc) == authors.input_question(sample)  # byte for byte
            for prediction in PREDICTIONS:
                client = RecordingClient(["Answer: 0.75"])
                expected = authors.judge(client, question=sample["question"],
                                         metadata=sample["asr_ocr_meta"],
                                         clues=sample["evidence"],
                                         reference_answer=sample["answer"],
                                         model_output=prediction)
                calls = server.calls
                values = utils.process_results(doc, [prediction])
                assert server.calls == calls + 1  # sent, the empty answer too (as they do)
                (call,) = client.calls
                assert server.requests[-1] == {  # one user message, their parameters
                    "model": call["model"], "messages": call["messages"],
                    **{key: call[key] for key in ("max_tokens", "temperature", "seed")}}
                assert values["judge_errors"]["judge_score"] == expected == 0.75
                assert values["evads_run"]["protocol"] == "official"
    judge = utils.get_judge()
    assert judge.timeout_s == call["timeout"]
    assert judge.max_attempts >= (10 if path == OFFICIAL_SCRIPT else 3)


@needs_official_eval
def test_the_authors_call_is_qwen_plus_temperature_0_seed_42_max_tokens_8000(env):
    script = load_official_script(OFFICIAL_EVAL)  # a checkout's root works as well
    assert script.path == OFFICIAL_SCRIPT.resolve() and script.sha256 == CHECKED_SHA256
    call = script.judge_call
    assert (call.model, dict(call.params), call.timeout_s, call.tries, call.retry_delay_s) == (
        "qwen-plus", {"max_tokens": 8000, "temperature": 0.0, "seed": 42}, 150.0, 10, 5.0)
    assert script.question_template.columns == ("asr_input", "question")
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_OFFICIAL_EVAL", str(OFFICIAL_EVAL))
    env.setenv("EVADS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    judge = judge_from_env()
    assert judge.model == "qwen-plus" and judge.call_params == dict(call.params)
    assert (judge.max_attempts, judge.retry_delay_s, judge.timeout_s) == (10, 5.0, 150.0)
    judge.close()
    env.setenv("EVADS_JUDGE_MODEL", "qwen-plus-2025-07-28")  # still overrides the default
    judge = judge_from_env()
    assert judge.model == "qwen-plus-2025-07-28"
    judge.close()


@needs_official_eval
def test_the_project_does_not_carry_the_authors_wording():
    script = load_official_script(OFFICIAL_SCRIPT)
    pieces = [line.strip() for line in script.judge_prompt.splitlines() if len(line) > 40]
    pieces += [text.strip() for kind, text in script.question_template.parts
               if kind == "text" and len(text.strip()) > 20]
    assert pieces
    files = [p for folder in ("evads_tasks", "evads_rl", "evads_density", "tests", "bench")
             for p in (REPO / folder).rglob("*") if p.is_file() and p.suffix in
             (".py", ".md", ".yaml", ".jsonl", ".json", ".sh", "")]
    files += [REPO / "README.md", REPO / "Makefile"]
    for file in files:
        text = file.read_text(encoding="utf-8", errors="ignore")
        assert not [piece for piece in pieces if piece in text], file


# ---- their parse rule -------------------------------------------------------------------

PARSE_TABLE = [  # reply, what their rule reads (None: a failed try)
    ("Answer: 0.75", 0.75),
    ("Answer:0.5", 0.5),
    ("The points are covered.\nAnswer: 1.0\n", 1.0),
    ("Answer: 1\nAnswer: 0", 0.0),                      # the LAST Answer: wins
    ("Answer: 0.25\r\n", 0.25),                         # stripped
    ("Answer: 0.6", 0.6),                               # any number is kept ...
    ("Answer: 2", 2.0),                                 # ... even off the scale
    ("Answer: -0", 0.0),
    ("0.75", 0.75),                                     # no Answer: -> the first line
    ("0.5\nreasoning follows", 0.5),
    ("Answer: 0.5 (partially correct)", None),          # a word after the number
    ("**Answer:** 0.75", None),                         # Markdown after the label
    ("answer: 1", None),                                # the label is case-sensitive
    ("Answer：0.5", None),                              # a Chinese colon is no label
    ("Answer:\n0.5", None),                             # the number on the next line
    ("Answer: ", None),
    ("", None),
    ("The answer is good.", None),
]


@pytest.mark.parametrize(("reply", "expected"), PARSE_TABLE)
def test_their_parse_rule(reply, expected):
    if expected is None:
        with pytest.raises(UnparseableReply):
            parse_authors_score(reply)
    else:
        assert parse_authors_score(reply) == expected


@pytest.mark.parametrize("reply", ["Answer: nan", "Answer: inf"])
def test_nan_and_inf_are_failed_tries_not_scores(reply):
    """The one deliberate difference: their script would keep NaN (left out of R5/R3 but 0
    in R2) or inf (which breaks the mean); here they are asked again like a garbled reply."""
    with pytest.raises(UnparseableReply, match="finite"):
        parse_authors_score(reply)


def test_the_parse_table_is_what_the_script_reads(script):
    authors = reference(*script)
    for reply, expected in PARSE_TABLE:
        client = RecordingClient([reply] * 20)
        read = authors.judge(client, "q", "m", "c", "r", "answer", max_retries=1)
        assert read == expected, reply


def test_official_r5_r3_r2_follow_their_arithmetic(env, script):
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_OFFICIAL_EVAL", str(script[0]))
    doc = utils._doc(parse_rows(ROWS[:1])[0], Path("/videos/101.mp4"), 0)
    expected = {"1.0": (1.0, 1.0, 1.0), "0.75": (0.75, 0.5, 0.0), "0.25": (0.25, 0.0, 0.0),
                "0.6": (0.6, 0.6, 0.0), "0": (0.0, 0.0, 0.0)}

    def policy(messages):  # the judge gives the level the model's answer names
        return "Answer: " + re.search(r"level=([\d.]+)", messages[0]["content"]).group(1)

    with JudgeServer(policy) as s:
        env.setenv("EVADS_JUDGE_BASE_URL", s.url)
        for level, (r5, r3, r2) in expected.items():
            values = utils.process_results(doc, [f"<answer>level={level}</answer>"])
            scores = tuple(values[m]["score"] for m in ("evads_r5", "evads_r3", "evads_r2"))
            assert scores == (r5, r3, r2), level
            assert values["evads_g"]["score"] == pytest.approx(sum(scores) / 3)


def test_official_retries_garbled_replies_at_least_their_tries(env):
    """The synthetic script allows 3 tries 0.01 s apart; evads keeps its own 6 as a floor.
    A reply repeated word for word at the script's temperature 0 is not asked for again:
    the same call would bring the same reply (and the same bill) each time."""
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_OFFICIAL_EVAL", str(SYNTHETIC))
    calls = iter(range(100))

    def garbled_five_times(messages: list[dict]) -> str:
        call = next(calls)
        return "Answer: 0.75" if call == 5 else f"I would say about {call}/10, maybe."

    with JudgeServer(garbled_five_times) as server:
        env.setenv("EVADS_JUDGE_BASE_URL", server.url)
        judge = judge_from_env()
        assert (judge.model, judge.retry_delay_s, judge.timeout_s) == ("synthetic-judge",
                                                                      0.01, 9.0)
        doc = utils._doc(parse_rows(ROWS[:1])[0], Path("/videos/101.mp4"), 0)
        values = utils.process_results(doc, ["59.9"])
        assert server.calls == 6 and values["judge_errors"]["error"] is None
    with JudgeServer(faults=["garbage"] * 5) as server:
        env.setenv("EVADS_JUDGE_BASE_URL", server.url)
        env.setenv("EVADS_CACHE_DIR", str(Path(os.environ["EVADS_CACHE_DIR"]) / "again"))
        values = utils.process_results(doc, ["59.9"])
        assert server.calls == 2
        assert "the judge gave the same reply twice at temperature 0" in \
            values["judge_errors"]["error"]


# ---- a missing or changed script ---------------------------------------------------------

@pytest.mark.parametrize(("case", "expected"), [
    ("unset", "EVADS_OFFICIAL_EVAL is not set"),
    ("missing file", "not found"),
    ("folder without the script", "is a folder without evaluation/eval_qwen3vl_8b.py"),
    ("no JUDGE_PROMPT", "JUDGE_PROMPT"),
    ("input_question from an unknown column", "cannot read"),
    ("no judge call", "chat.completions.create"),
    ("not Python", "is not a Python file"),
])
def test_a_missing_or_changed_script_is_a_clear_error(env, tmp_path, case, expected):
    text = SYNTHETIC.read_text(encoding="utf-8")
    target = tmp_path / "eval_qwen3vl_8b.py"
    changed = {
        "no JUDGE_PROMPT": text.replace("JUDGE_PROMPT = ", "RUBRIC = "),
        "input_question from an unknown column": text.replace('sample["asr_input"]',
                                                              'sample["subtitles"]'),
        "no judge call": text.replace("client.chat.completions.create(", "client.call("),
        "not Python": "JUDGE_PROMPT = '''unterminated",
    }
    if case in changed:
        target.write_text(changed[case], encoding="utf-8")
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_JUDGE_BASE_URL", "http://127.0.0.1:9/v1")
    if case != "unset":
        env.setenv("EVADS_OFFICIAL_EVAL", str(tmp_path if case.startswith("folder") else
                                               tmp_path / "nope.py" if case == "missing file"
                                               else target))
    with pytest.raises(JudgeConfigError) as caught:
        judge_from_env()
    message = str(caught.value)
    assert expected in message and PUBLISHED_AT in message, message
    assert "EVADS_OFFICIAL_EVAL" in message


def test_the_official_protocol_refuses_the_similarity_judge(env):
    env.setenv("EVADS_PROTOCOL", "official")
    env.setenv("EVADS_OFFICIAL_EVAL", str(SYNTHETIC))
    env.setenv("EVADS_JUDGE", "similarity")
    with pytest.raises(JudgeConfigError, match="needs an LLM judge"):
        judge_from_env()
    with pytest.raises(OfficialScriptError):
        load_official_script(SYNTHETIC.parent / "nope.py")


# ---- the evads protocol: the same inputs at both ends ------------------------------------

def test_evads_protocol_gives_asr_input_to_the_model_and_asr_ocr_meta_to_the_judge(env):
    record = parse_rows(ROWS[:1])[0]
    assert record.model_input() == ROWS[0]["asr_input"]
    assert record.metadata == ROWS[0]["asr_ocr_meta"]
    doc = utils._doc(record, Path("/videos/101.mp4"), 0)
    text = utils.doc_to_text(doc)
    assert text.startswith(ROWS[0]["asr_input"] + "\n\n") and OCR_ONLY not in text
    with JudgeServer(lambda messages: "Answer: 1.0") as server:
        env.setenv("EVADS_JUDGE_BASE_URL", server.url)
        env.setenv("EVADS_JUDGE_MODEL", "loopback")
        utils.process_results(doc, ["<answer>59.9元</answer>"])
        (body,) = server.requests
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["temperature"] == 0 and "seed" not in body
    sections = read_sections(body["messages"][-1]["content"])
    assert sections[SECTION_METADATA] == ROWS[0]["asr_ocr_meta"]


# ---- a real lmms-eval run in official mode -----------------------------------------------

BIN = Path(sys.executable).parent


def speech_only(metadata: str) -> str:
    """The metadata without its OCR text: what an asr_input missing the OCR half holds."""
    lines = []
    for line in metadata.splitlines():
        if line.startswith("Time ") and "OCR Text:" in line:
            if "ASR Text:" not in line:
                continue
            when = line.split(": ", 1)[0]
            line = f"{when}: ASR Text:{line.split('ASR Text:', 1)[1]}"
        lines.append(line)
    return "\n".join(lines)


def official_test_file(sample_dir: Path, folder: Path) -> Path:
    """The sample's test split with asr_input cut to the speech (no OCR), asr_ocr_meta whole:
    the two fields differ on every row."""
    rows = pq.read_table(sample_dir / "annotations" / "test.parquet").to_pylist()
    for row in rows:
        row["asr_input"] = speech_only(row["asr_ocr_meta"])
    assert all(row["asr_input"] != row["asr_ocr_meta"] for row in rows)
    (folder / "annotations").mkdir(parents=True)
    path = folder / "annotations" / "test.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.slow
def test_a_real_lmms_eval_run_in_official_mode(sample_dir, tmp_path):
    script_path = OFFICIAL_SCRIPT if OFFICIAL_SCRIPT.is_file() else SYNTHETIC
    authors = reference(*next(s for s in SCRIPTS.values() if s[0] == script_path))
    annotations = official_test_file(sample_dir, tmp_path / "evads")
    rows = {row["ques_id"]: row for row in pq.read_table(annotations).to_pylist()}
    out = tmp_path / "out"
    response = "<think>price first</think> <answer>the price card</answer>"

    off_scale_question = next(iter(rows.values()))["question"]

    def policy(messages):  # one question gets a score off the scale, kept as their rule does
        return ("Answer: 0.6" if off_scale_question in messages[0]["content"] else
                "Close.\nAnswer: 0.75")

    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    with JudgeServer(policy) as server:
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                   EVADS_ANNOTATIONS=str(annotations),
                   EVADS_VIDEO_DIR=str(sample_dir / "videos"),
                   EVADS_OFFICIAL_EVAL=str(script_path), EVADS_JUDGE_BASE_URL=server.url,
                   EVADS_CACHE_DIR=str(tmp_path / "cache"))
        done = subprocess.run(
            [str(BIN / "lmms_eval"), "--model", "dummy", "--model_args",
             "response=" + response.replace(",", " ") + ",read_bytes=1", "--tasks", "evads",
             "--protocol", "official", "--output_path", str(out), "--log_samples"],
            env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
        bodies = list(server.requests)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    # every judge request: one user message, the script's parameters, asr_ocr_meta inside
    client = RecordingClient(["Answer: 1"] * len(rows))
    for row in rows.values():
        authors.judge(client, question=row["question"], metadata=row["asr_ocr_meta"],
                      clues=row["evidence"], reference_answer=row["answer"],
                      model_output=response)
    expected = sorted(json.dumps({"model": c["model"], "messages": c["messages"],
                                  **{k: c[k] for k in ("max_tokens", "temperature", "seed")}},
                                 sort_keys=True, ensure_ascii=False) for c in client.calls)
    assert sorted(json.dumps(b, sort_keys=True, ensure_ascii=False) for b in bodies) == expected

    (results_path,) = out.rglob("*_results.json")
    results = json.loads(results_path.read_text(encoding="utf-8"))
    sha = load_official_script(script_path).sha256
    params = ", ".join(f"{k}={v}" for k, v in load_official_script(
        script_path).judge_call.params.items())
    for name in ("evads_bp", "evads", "evads_perception"):
        run = results["results"][name]["evads_run,none"]
        assert run.startswith(f"protocol official; script sha256 {sha}; judge ")
        assert params in run
    assert model_info(results["config"])[1] is False  # the dummy model: fixed replies
    logged = [json.loads(line) for path in results_path.parent.glob("*_samples_evads_*.jsonl")
              for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(logged) == len(rows)
    for sample in logged:
        row = rows[sample["judge_errors"]["question_id"]]
        assert sample["input"] == authors.input_question(authors_sample(row))  # asr_input
        assert row["asr_input"] in sample["input"] and row["asr_ocr_meta"] not in sample["input"]
        assert sample["evads_run"]["official_script_sha256"] == sha
        assert sample["judge_errors"]["protocol"] == "official"
    off_scale = [s for s in logged if s["judge_errors"]["judge_score"] == 0.6]
    assert off_scale and all(s["evads_r3"]["score"] == 0.6 and s["evads_r2"]["score"] == 0.0
                             for s in off_scale)

    report = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report", str(out)],
                            cwd=REPO, capture_output=True, text=True, env=env, check=True).stdout
    assert f"- protocol: official (the authors' evaluation script); script sha256 `{sha}`" in report
    assert "- random model: no" in report
    assert "max_tokens=8000, temperature=0.0, seed=42; timeout 150 s; up to 10 tries, 5 s " \
           "apart" in report if script_path == OFFICIAL_SCRIPT else "max_tokens=321" in report
    assert (results_path.parent / "evads_report.png").is_file()

    # the same judgements as the authors' final_results.csv: compare agrees on every question
    csv_path = tmp_path / "authors" / "final_results.csv"
    write_final_results(csv_path, rows, logged)
    compared = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "compare", str(out),
                               str(csv_path)], cwd=REPO, capture_output=True, text=True,
                              env=env, check=True).stdout
    assert f"| all | {len(rows)} | {len(rows)} | 1.0000 | 1.0000 | 0.0000 | 0.0000 | 0 | 0 |" \
        in compared
    official = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report",
                               "--official-results", str(csv_path)], cwd=REPO,
                              capture_output=True, text=True, env=env, check=True).stdout
    assert _row(official, "Overall") == _row(report, "Overall")
    assert (csv_path.parent / "evads_report.png").is_file()


def write_final_results(path: Path, rows: dict[str, dict], logged: list[dict]) -> Path:
    """A final_results.csv as the authors' script writes it (pandas, their columns)."""
    import pandas as pd

    records = []
    for sample in logged:
        row = rows[sample["judge_errors"]["question_id"]]
        score = sample["judge_errors"]["judge_score"]
        records.append({
            "video_id": row["video_id"], "ques_id": row["ques_id"],
            "question": row["question"], "answer": row["answer"], "prediction": "x",
            "ques_categories": row["ques_categories"], "goods_category": row["goods_category"],
            "asr_input": row["asr_input"], "evidence": row["evidence"],
            "asr_ocr_meta": row["asr_ocr_meta"], "score_R5": score,
            "score_R3": {0.75: 0.5, 0.25: 0}.get(score, score),
            "score_R2": None if score is None else 1.0 if score == 1.0 else 0.0})
    path.parent.mkdir(parents=True)
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def _row(report: str, name: str) -> list[str]:
    line = next(line for line in report.splitlines() if line.startswith(f"| {name} |"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


def test_the_authors_output_reports_and_keeps_failed_judgements_out_of_the_means(tmp_path):
    rows = {f"q{n}": {"video_id": "v", "ques_id": f"q{n}", "question": "q", "answer": "a",
                      "ques_categories": code, "goods_category": "个人护理", "asr_input": "x",
                      "evidence": "", "asr_ocr_meta": "x"}
            for n, code in enumerate(["BP", "BP", "CM", "RC"])}
    logged = [{"judge_errors": {"question_id": q, "judge_score": s}}
              for q, s in zip(rows, [1.0, None, 0.75, 0.25], strict=True)]
    path = write_final_results(tmp_path / "run" / "final_results.csv", rows, logged)
    done = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report",
                           "--official-results", str(path)], cwd=REPO, capture_output=True,
                          text=True, check=True)
    assert "| BP Basic Perception | 2 | 1 | 1 | 1.0000 | 1.0000 | 1.0000 | 1.0000 |" in done.stdout
    assert "| Personal Care | 4 | 3 | 1 | 0.6667 | 0.5000 | 0.3333 |" in done.stdout
    assert "the authors' evaluation script output" in done.stdout
    bad = tmp_path / "bad.csv"
    shutil.copy(path, bad)
    bad.write_text(bad.read_text(encoding="utf-8").replace(",0.75,0.5,", ",0.75,0.75,"),
                   encoding="utf-8")
    failed = subprocess.run([str(BIN / "python"), "-m", "evads_tasks", "report",
                             "--official-results", str(bad)], cwd=REPO, capture_output=True,
                            text=True)
    assert failed.returncode == 2 and "score_R3 0.75 is not what score_R5 0.75 gives" in \
        failed.stderr


def test_compare_counts_agreement_per_task_on_known_pairs():
    from evads_tasks.runs.compare import agreement, pair_samples
    from evads_tasks.runs.scored_runs import ScoredSample

    def sample(qid, task, score):
        return ScoredSample(question_id=qid, task=task, category="Others", score=score,
                            judge="j")

    a = [sample("1", "BP", 1.0), sample("2", "BP", 0.5), sample("3", "CM", None),
         sample("4", "CM", 0.25), sample("5", "RC", 0.0)]
    b = [sample("1", "BP", 1.0), sample("2", "BP", 0.75), sample("3", "CM", 0.5),
         sample("4", "CM", 0.25), sample("6", "RC", 1.0)]
    pairing = pair_samples(a, b)
    assert (len(pairing.pairs), pairing.only_a, pairing.only_b) == (4, ["5"], ["6"])
    stats = agreement(pairing.pairs)
    assert (stats["both_judged"], stats["judged_only_b"]) == (3, 1)
    assert stats["exact"] == pytest.approx(2 / 3) and stats["within_0_25"] == 1.0
    assert stats["mean_difference"] == pytest.approx(0.25 / 3)
    assert stats["levels"] == {0.25: {0.25: 1}, 0.5: {0.75: 1}, 1.0: {1.0: 1}}
    assert math.isnan(agreement([])["exact"])


def test_every_written_test_row_keeps_both_texts(tmp_path):
    records = parse_rows(ROWS)
    back = load_annotations(write_schema(records, tmp_path / "t.parquet", "test"))
    assert back == records
    written = pq.read_table(tmp_path / "t.parquet").to_pylist()
    assert [(r["asr_input"], r["asr_ocr_meta"]) for r in written] == [
        (r["asr_input"], r["asr_ocr_meta"]) for r in ROWS]


def test_make_eval_official_runs_qwen3_vl_with_the_scripts_video_settings():
    venv = Path(sys.executable).parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    done = run_make("-n", "-o", f"{venv}/.installed", "eval-official", f"VENV={venv}",
                    "PRETRAINED=/models/Qwen3-VL-8B-Instruct",
                    env={**env, "EVADS_ANNOTATIONS": "/data/annotations/test.parquet"})
    assert done.returncode == 0, done.stderr
    command = done.stdout
    assert ("lmms_eval --model qwen3_vl --model_args \"pretrained=/models/Qwen3-VL-8B-Instruct,"
            "fps=2,max_num_frames=768,total_pixels=19267584,min_pixels=131072\"") in command
    assert "--protocol official" in command and "--gen_kwargs top_p=0.8,top_k=20" in command
    assert "max_new_tokens=64" not in command  # the task's 1524 new tokens at temperature 1

    # what lmms-eval's qwen3_vl hands qwen-vl-utils for each video, against the script's
    # video entry (total_pixels, max_frames) with qwen-vl-utils' defaults for the rest
    from lmms_eval.models.simple.qwen3_vl import Qwen3_VL
    from lmms_eval.utils import simple_parse_args_string
    from qwen_vl_utils import vision_process

    args = simple_parse_args_string(command.split('--model_args "')[1].split('"')[0])
    model = SimpleNamespace(min_pixels=args["min_pixels"], max_pixels=1605632,
                            total_pixels=args["total_pixels"], fps=args["fps"],
                            max_num_frames=args["max_num_frames"])
    assert Qwen3_VL._build_video_kwargs(model) == {
        "total_pixels": 24576 * 28 * 28, "max_frames": 768,  # as the script writes them
        "fps": vision_process.FPS,                            # its default, 2 fps
        "min_pixels": vision_process.VIDEO_MIN_TOKEN_NUM * (16 * 2) ** 2}  # default, 16-px
