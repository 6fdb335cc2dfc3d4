"""The annotation model: the real RL split, schema round-trips, task labels, bad input, CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from make_runner import run_make
from paths import REPO, RL_PARQUET, needs_rl_parquet

from evads_tasks.core.annotations import (
    ANNOTATIONS_ENV,
    TASK_CODES,
    VIDEO_DIR_ENV,
    AnnotationError,
    EvadsRecord,
    Event,
    load_annotations,
    render_metadata,
    resolve_video,
    task_code,
    write_jsonl,
    write_schema,
)
from evads_tasks.core.annotations.__main__ import main as cli_main


@pytest.fixture(scope="module")
def rl_records() -> list[EvadsRecord]:
    if not RL_PARQUET.is_file():
        pytest.skip(f"{RL_PARQUET} not present")
    return load_annotations(RL_PARQUET)


# ---- the real RL split ------------------------------------------------------------

def test_every_rl_row_loads_with_events_category_and_duration(rl_records):
    assert len(rl_records) == pq.read_metadata(RL_PARQUET).num_rows == 980
    for record in rl_records:
        assert record.events, record.question_id
        assert record.category in {"Apparel & Bags", "Beauty & Cosmetics", "Personal Care",
                                   "Food & Healthcare", "Home & Furniture", "Home Appliances",
                                   "Baby & Pet", "Others"}, record.question_id
        assert record.duration and record.duration > 0, record.question_id
        assert record.split == "rl" and record.task_inferred


def test_loader_labels_rl_videos_as_the_hand_labels(rl_records):
    """The loader groups each video's questions for ``assign_tasks``: on the hand-labelled
    videos (tests/fixtures/rl_task_labels.jsonl) its labels are the person's."""
    hand = [json.loads(line) for line in (REPO / "tests/fixtures/rl_task_labels.jsonl")
            .read_text(encoding="utf-8").splitlines()]
    loaded = {r.question_id: r.task for r in rl_records}
    assert len({r.video_id for r in rl_records}) == 196
    assert {row["question_id"]: loaded[row["question_id"]] for row in hand} == {
        row["question_id"]: row["task"] for row in hand}


# ---- round-trips -------------------------------------------------------------------

HAND_EVENTS = (
    Event(0, 0, ("新品上市", "限时五折"), "姐妹们这件真的绝了"),   # multi-segment OCR + ASR
    Event(1, 1, (), "面料是纯棉的"),                              # ASR only
    Event(2, 2, ("尺码[S-XL]", "可穿到140斤"), None),              # OCR only, brackets inside
    Event(23, 25, ("EXIT",), None),                                 # time range
)
HAND_QUESTIONS = {
    "BP": "视频中这件T恤的价格和尺码范围分别是什么？",
    "CM": "当语音提到“面料是纯棉的”时，画面中衣服是什么颜色？",
    "ML": "视频如何利用限时折扣制造紧迫感促成下单？",
    "CI": "视频锁定哪类核心受众，试图解决何种穿搭痛点？",
    "RC": "视频宣称“真的绝了”是否属于违规绝对化用语？",
}


def hand_records(split: str) -> list[EvadsRecord]:
    """Five records of one made-up video, shaped like the given split's records."""
    video_id = "hand01"
    records = []
    for number, (task, question) in enumerate(HAND_QUESTIONS.items()):
        answer = f"答案{number}：纯棉T恤，限时五折。"
        records.append(EvadsRecord(
            question_id=f"hand01_q{number}", video_id=video_id,
            video_file=f"{video_id}.mp4" if split == "test" else f"../videos/{video_id}.mp4",
            question=question, answer=answer, task=task, task_inferred=split != "test",
            # the published SFT split carries no clues
            split=split, clues="" if split == "sft" else f"线索{number}：0s字幕“限时五折”。",
            metadata=render_metadata("服饰鞋包", 26, HAND_EVENTS), events=HAND_EVENTS,
            category="Apparel & Bags", duration=26,
            reasoning_target=(f"<think>线索{number}</think><answer>{answer}</answer>"
                              if split == "sft" else None)))
    return records


def as_split(records: list[EvadsRecord], split: str) -> list[EvadsRecord]:
    """Real RL records reshaped to what the given split's loader produces."""
    return [dataclasses.replace(
        r, split=split, task_inferred=split != "test",
        clues="" if split == "sft" else r.clues,
        video_file=f"{r.video_id}.mp4" if split == "test" else r.video_file,
        reasoning_target=(f"<think>{r.clues}</think><answer>{r.answer}</answer>"
                          if split == "sft" else None)) for r in records]


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
@pytest.mark.parametrize("schema", ["test", "rl", "sft", "normalized"])
def test_hand_made_records_round_trip(tmp_path, schema, suffix):
    records = hand_records("rl" if schema == "normalized" else schema)
    path = write_schema(records, tmp_path / f"hand{suffix}", schema)
    assert load_annotations(path) == records


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
@pytest.mark.parametrize("schema", ["test", "rl", "sft", "normalized"])
def test_real_rl_records_round_trip(tmp_path, rl_records, schema, suffix):
    videos = sorted({r.video_id for r in rl_records})[:3]
    chosen = [r for r in rl_records if r.video_id in videos]
    records = as_split(chosen, "rl" if schema == "normalized" else schema)
    path = write_schema(records, tmp_path / f"real{suffix}", schema)
    back = load_annotations(path)
    assert len(back) == 15
    assert back == records


def test_written_rl_rows_have_the_authors_shape(tmp_path, rl_records):
    original = pq.read_table(RL_PARQUET).slice(0, 1).to_pylist()[0]
    record = next(r for r in rl_records if r.question_id == original["extra_info"]["id"])
    row = json.loads(write_schema([record], tmp_path / "one.jsonl", "rl").read_text())
    prompt = row["prompt"][0]["content"]
    assert prompt.startswith("<video>Voiceover: Duration: 26s\n\n[Time-aligned Events]:\n")
    assert f"\n\n Question: {record.question}\n" in prompt
    assert prompt.endswith(
        "<think>your_thinking</think> <answer>your_answer_within_50_words</answer>")
    assert 'Time 8s: Audio Speech: "穿到140斤"' in prompt and "OCR Text" not in prompt
    assert row["reward_model"]["verifier"][0]["meta_info"] == (
        original["reward_model"]["verifier"][0]["meta_info"])
    assert row["extra_info"] == original["extra_info"]


def test_write_jsonl_is_the_normalized_schema(tmp_path):
    records = hand_records("sample")
    path = write_jsonl(records, tmp_path / "n.jsonl")
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["dimension"] == "Perception" and first["task"] == "BP"
    assert load_annotations(path) == records


# ---- task labels -------------------------------------------------------------------

@pytest.mark.parametrize("label, code", [
    ("BP", "BP"), ("cm", "CM"), ("Marketing Logic", "ML"), ("consumer_insight", "CI"),
    ("Regulatory Compliance", "RC"), ("基础感知", "BP"), ("跨模态检测", "CM"),
    ("营销逻辑", "ML"), ("消费者洞察", "CI"), ("合规审查", "RC"),
])
def test_task_labels_map_codes_english_and_chinese(label, code):
    assert task_code(label) == code


def test_test_schema_keeps_given_labels_not_inferred(tmp_path):
    rows = flat_rows()
    rows[0]["ques_categories"] = "跨模态检测"
    records = load_annotations(write_rows(tmp_path / "t.jsonl", rows))
    assert [(r.task, r.task_inferred) for r in records] == [("CM", False), ("BP", False)]


# ---- bad input ---------------------------------------------------------------------

def flat_rows() -> list[dict]:
    return [{"question": "视频中的价格是多少？", "answer": "9.9元", "ques_categories": "BP",
             "goods_category": "服饰鞋包", "asr_input": "Duration: 5s\nTime 1s: OCR Text: [9.9元]",
             "video_id": str(n), "ques_id": f"q{n}", "evidence": "1s字幕"} for n in range(2)]


def write_rows(path: Path, rows: list[dict]) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    return path


def load_error(path: Path) -> AnnotationError:
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    assert str(path) in str(caught.value)
    return caught.value


def test_unknown_task_label_names_file_row_and_field(tmp_path):
    rows = flat_rows()
    rows[1]["ques_categories"] = "Visual Trivia"
    error = load_error(write_rows(tmp_path / "t.parquet", rows))
    assert (error.row, error.field) == (1, "ques_categories")
    assert "row 1" in str(error) and "'Visual Trivia'" in str(error)


def test_missing_column_names_row_and_field(tmp_path):
    rows = flat_rows()
    del rows[1]["ques_id"]
    error = load_error(write_rows(tmp_path / "t.jsonl", rows))
    assert (error.row, error.field) == (1, "ques_id") and "missing column" in str(error)


def test_file_matching_no_schema_lists_its_columns(tmp_path):
    error = load_error(write_rows(tmp_path / "t.jsonl", [{"title": "x", "text": "y"}]))
    assert "['text', 'title']" in str(error) and "match no E-VAds schema" in str(error)


def test_question_that_is_a_number_is_a_type_error(tmp_path):
    rows = flat_rows()
    rows[0]["question"] = 42
    error = load_error(write_rows(tmp_path / "t.jsonl", rows))
    assert (error.row, error.field) == (0, "question")
    assert "expected str, got int" in str(error)


def test_rl_prompt_without_question_names_row_and_field(tmp_path):
    rows = pq.read_table(RL_PARQUET).slice(0, 3).to_pylist() if RL_PARQUET.is_file() else None
    if rows is None:
        pytest.skip(f"{RL_PARQUET} not present")
    rows[2]["prompt"] = [{"role": "user", "content": "<video>没有问题的提示"}]
    error = load_error(write_rows(tmp_path / "rl.parquet", rows))
    assert (error.row, error.field) == (2, "prompt") and "Question:" in str(error)


def test_empty_file(tmp_path):
    (tmp_path / "empty.parquet").write_bytes(b"")
    assert "empty" in str(load_error(tmp_path / "empty.parquet"))


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(os.urandom(2048))
    assert "not a readable parquet file" in str(load_error(path))


def test_corrupt_jsonl_line_is_named(tmp_path):
    path = write_rows(tmp_path / "t.jsonl", flat_rows())
    path.write_text(path.read_text(encoding="utf-8") + '{"question": "半截\n', encoding="utf-8")
    error = load_error(path)
    assert "line 3" in str(error) and "invalid JSON" in str(error)


def test_missing_file(tmp_path):
    assert "file not found" in str(load_error(tmp_path / "nope.parquet"))


@pytest.mark.parametrize("typo", ["annotations/test.parquet", "data/test.jsonl", "./x/y",
                                  "~/evads/test.json"])
def test_a_mistyped_relative_path_is_a_missing_file_not_a_hub_id(tmp_path, monkeypatch, typo):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AnnotationError, match="file not found"):
        load_annotations(typo)


def test_unknown_split_in_normalized_rows_is_named(tmp_path):
    path = write_jsonl(hand_records("rl"), tmp_path / "n.jsonl")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows[3]["split"] = "validation"
    error = load_error(write_rows(tmp_path / "bad.jsonl", rows))
    assert (error.row, error.field) == (3, "split") and "'validation'" in str(error)
    with pytest.raises(ValueError, match="split must be one of"):
        dataclasses.replace(hand_records("rl")[0], split="dev")


def rl_rows(tmp_path) -> list[dict]:
    path = write_schema(hand_records("rl"), tmp_path / "rl.jsonl", "rl")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_single_verifier_object_is_accepted(tmp_path):
    rows = rl_rows(tmp_path)
    for row in rows:
        row["reward_model"]["verifier"] = row["reward_model"]["verifier"][0]
    assert load_annotations(write_rows(tmp_path / "one.jsonl", rows)) == hand_records("rl")


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda r: r["reward_model"].update(verifier=["clues only as text"]),
     "reward_model.verifier", "got str"),
    (lambda r: r["reward_model"].update(verifier=[{"clues": ["a"], "meta_info": ""}]),
     "reward_model.verifier.clues", "expected str, got list"),
    (lambda r: (r.update(videos=[]), r["extra_info"].pop("video_path")),
     "videos", "empty list of videos"),
    (lambda r: (r.update(videos=[""]), r["extra_info"].pop("video_path")),
     "videos", "expected a video path"),
])
def test_malformed_training_rows_name_the_field(tmp_path, change, field, message):
    rows = rl_rows(tmp_path)
    change(rows[2])
    error = load_error(write_rows(tmp_path / "bad.jsonl", rows))
    assert (error.row, error.field) == (2, field) and message in str(error)


def test_hub_split_without_a_file_lists_the_files(tmp_path):
    """A hub dataset already in the local hub cache, read offline by the real hub client."""
    snapshot = tmp_path / "hub" / "datasets--owner--dataset" / "snapshots" / "abc123"
    write_schema(hand_records("rl"), snapshot / "annotations" / "rl.parquet", "rl")
    write_schema(hand_records("sft"), snapshot / "annotations" / "sft.parquet", "sft")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("abc123")
    code = ("import sys\nfrom evads_tasks.core.annotations import load_annotations\n"
            "print(len(load_annotations('owner/dataset', split=sys.argv[1])))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    runs = {split: subprocess.run([sys.executable, "-c", code, split], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=120)
            for split in ("test", "sft")}
    assert runs["sft"].returncode == 0 and runs["sft"].stdout.strip() == "5", runs["sft"].stderr
    assert runs["test"].returncode != 0
    assert "no annotation file for split 'test'" in runs["test"].stderr
    assert "annotations/rl.parquet, annotations/sft.parquet" in runs["test"].stderr


# ---- videos ------------------------------------------------------------------------

def test_authors_relative_path_resolves_by_name_under_the_root(tmp_path):
    root = tmp_path / "videos"
    root.mkdir()
    (root / "698.mp4").write_bytes(b"\0")
    record = dataclasses.replace(hand_records("rl")[0], video_file="../videos/698.mp4")
    assert resolve_video(record, root) == root / "698.mp4"


def test_video_root_from_environment(tmp_path, monkeypatch):
    (tmp_path / "hand01.mp4").write_bytes(b"\0")
    monkeypatch.setenv(VIDEO_DIR_ENV, str(tmp_path))
    assert resolve_video(hand_records("rl")[0]) == tmp_path / "hand01.mp4"


@pytest.mark.parametrize("video_file", ["../../../etc/passwd", "..\\..\\secret.mp4",
                                        "/abs/elsewhere/x.mp4"])
def test_resolved_path_never_leaves_the_root(tmp_path, video_file):
    record = dataclasses.replace(hand_records("rl")[0], video_file=video_file)
    assert resolve_video(record, tmp_path, must_exist=False).parent == tmp_path


@pytest.mark.parametrize("video_file", ["videos/..", "../videos/", "."])
def test_path_without_a_file_name_is_refused(tmp_path, video_file):
    record = dataclasses.replace(hand_records("rl")[0], video_file=video_file)
    with pytest.raises(AnnotationError, match="names no file"):
        resolve_video(record, tmp_path, must_exist=False)


def test_missing_video_names_path_and_question(tmp_path):
    record = hand_records("rl")[2]
    with pytest.raises(AnnotationError) as caught:
        resolve_video(record, tmp_path)
    assert str(tmp_path / "hand01.mp4") in str(caught.value)
    assert "hand01_q2" in str(caught.value)


def test_no_video_root_configured(monkeypatch):
    monkeypatch.delenv(VIDEO_DIR_ENV, raising=False)
    with pytest.raises(AnnotationError, match=VIDEO_DIR_ENV):
        resolve_video(hand_records("rl")[0])


# ---- summary CLI and sources -------------------------------------------------------

def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "evads_tasks.core.annotations", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


@needs_rl_parquet
def test_summary_json_on_the_rl_split():
    done = run_cli("summary", str(RL_PARQUET), "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["videos"] == 196 and summary["questions"] == 980
    assert summary["per_task"] == {code: 196 for code in TASK_CODES}
    assert summary["inferred_share"] == 1.0


def test_summary_markdown(tmp_path, capsys):
    path = write_schema(hand_records("test"), tmp_path / "t.parquet", "test")
    assert cli_main(["summary", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# E-VAds annotations: {path}")
    assert "- videos: 1" in text and "- questions: 5" in text
    assert "- inferred task labels: 0.0%" in text
    assert "| BP | 1 |" in text and "| Apparel & Bags | 5 |" in text


def test_summary_of_a_bad_file_exits_2_with_the_error_on_stderr(tmp_path):
    path = tmp_path / "corrupt.parquet"
    path.write_bytes(os.urandom(512))
    done = run_cli("summary", str(path), "--json")
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"file {path}" in done.stderr and "parquet" in done.stderr


def test_hub_id_offline_names_the_dataset_and_says_to_pass_a_local_file(tmp_path):
    """Outside lmms-eval too (the summary CLI, evads_density): the hint names no lmms-eval
    setting only, and the id is called a hub dataset, not a file."""
    hub_id = "TaobaoTmall-AlgorithmProducts/E-VAds_Benchmark"
    done = run_cli("summary", hub_id, env={"HF_HUB_OFFLINE": "1",
                                           "HF_HOME": str(tmp_path / "hf")})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: hub dataset {hub_id}: could not fetch ")
    assert done.stderr.rstrip().endswith(
        f"pass a local annotation file instead (or set {ANNOTATIONS_ENV})")
    assert f"file {hub_id}" not in done.stderr and "Traceback" not in done.stderr


def test_a_folder_is_refused_as_a_folder(tmp_path):
    done = run_cli("summary", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: {tmp_path} is a folder: pass an annotation file "
                                   "(.parquet, .jsonl or .json)")


def test_make_help_lists_demo_annotations():
    done = run_make("help", timeout=60)
    assert done.returncode == 0, done.stderr
    listed = done.stdout
    line = next(line for line in listed.splitlines() if line.startswith("demo-annotations\t"))
    assert "summary of the sample's annotations" in line


def test_annotations_from_the_environment_variable(tmp_path, monkeypatch):
    path = write_schema(hand_records("test"), tmp_path / "t.jsonl", "test")
    monkeypatch.setenv(ANNOTATIONS_ENV, str(path))
    assert load_annotations() == hand_records("test")
    monkeypatch.delenv(ANNOTATIONS_ENV)
    with pytest.raises(AnnotationError, match=ANNOTATIONS_ENV):
        load_annotations()


# ---- the bundled sample dataset ----------------------------------------------------

def test_sample_files_load_and_training_tasks_match_the_labels(sample_dir):
    """Every split file's questions, their tasks as labelled in normalized.jsonl (the RL and
    SFT files carry no label: the classifier's), their videos found by name."""
    folder = sample_dir / "annotations"
    labelled = {r.question_id: r for r in load_annotations(folder / "normalized.jsonl")}
    assert labelled and not any(r.task_inferred for r in labelled.values())
    split_ids = []
    for name in ("test.parquet", "rl.parquet", "sft.parquet"):
        records = load_annotations(folder / name)
        split_ids += [r.question_id for r in records]
        for record in records:
            assert record.task == labelled[record.question_id].task, (name, record.question)
            assert resolve_video(record, sample_dir / "videos").is_file()
    assert sorted(split_ids) == sorted(labelled)  # the three splits partition the questions
