"""The SFT split in the layout the authors publish it, read by every command.

The rows come from ``tests/published_sft.py``, written from the facts of the real
``EVAds_SFT.parquet`` (1,880 rows, 376 videos; the question unlabelled on its own line before
the instruction; the whole ``<think>..</think>\\n<answer>..</answer>`` target in ``answer``;
no ``reward_model``, no task label), and in the variations other copies of it plausibly
have. Every command must read it with the reference = the ``<answer>`` part, the reasoning
target = the whole ``answer``, the metadata = the prompt's text before the question, no clues.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from judge_server import JudgeServer
from lmms_eval.tasks import TaskManager
from paths import REPO
from published_sft import INSTRUCTION, PublishedVideo, Variation, published_split, rows_of
from qa_llm_server import ScriptedAdLLM

from evads_rl.data import FrameSettings, build_dataset
from evads_rl.verl_data import write_verl_parquet
from evads_tasks.core.annotations import TASK_CODES, AnnotationError, load_annotations, parse_rows
from evads_tasks.core.annotations.schemas import SFT_COLUMNS
from evads_tasks.core.judge.prompts import SECTION_CLUES, SECTION_METADATA, read_sections
from evads_tasks.tasks import INCLUDE_PATH
from evads_tasks.tasks.utils import process_results

VARIATIONS = {
    "published": Variation(),
    "crlf, blank lines, JSON text, 21.5s, no category": Variation(
        crlf=True, extra_blank_lines=True, prompt_as="json", fractional_duration=True,
        category_line=False),
    "numpy array (pandas)": Variation(prompt_as="numpy"),
    "tuple": Variation(prompt_as="tuple"),
}


@pytest.fixture(scope="module")
def published() -> list[PublishedVideo]:
    return published_split(2, first=701)


@pytest.fixture(scope="module")
def sft_tree(tmp_path_factory, published) -> Path:
    """``annotations/sft.parquet`` (the published columns) and ``videos/`` for two videos."""
    root = tmp_path_factory.mktemp("sft")
    (root / "annotations").mkdir()
    (root / "videos").mkdir()
    table = pa.Table.from_pylist(rows_of(published))
    assert table.column_names == list(SFT_COLUMNS)
    pq.write_table(table, root / "annotations" / "sft.parquet")
    for video in published:
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                        "testsrc=size=96x64:rate=4:duration=4", "-c:v", "libx264",
                        "-pix_fmt", "yuv420p", str(root / "videos" / f"{video.video}.mp4")],
                       check=True)
    return root


@pytest.mark.parametrize("variation", VARIATIONS.values(), ids=VARIATIONS.keys())
def test_every_variation_loads_question_metadata_reference_and_target(variation):
    videos = published_split(3, first=9000, variation=variation)
    records = parse_rows(rows_of(videos), "sft.parquet")
    assert len(records) == 15 and {r.split for r in records} == {"sft"}
    written = [(video, *row) for video in videos
               for row in zip(video.rows, video.tasks, video.questions, strict=True)]
    for record, (video, row, task, question) in zip(records, written, strict=True):
        assert record.question_id == row["extra_info"]["id"] and record.video_id == video.video
        assert record.question == question and "Question" not in record.question
        assert record.task == task and record.task_inferred  # the classifier's, right
        assert record.metadata == video.metadata  # the text before the question, LF ends
        assert INSTRUCTION[:40] not in record.metadata and record.clues == ""
        assert record.reasoning_target == row["answer"]
        assert record.answer == row["answer"].split("<answer>")[1].removesuffix("</answer>")
        assert record.duration == float(video.metadata.split("Duration: ")[1].split("s")[0])
        assert (record.category is None) == (not variation.category_line)
        assert record.events and record.video_file == f"../videos/{video.video}.mp4"


def test_summary_of_a_file_of_the_published_size_gives_376_per_task(tmp_path):
    path = tmp_path / "EVAds_SFT.parquet"
    pq.write_table(pa.Table.from_pylist(rows_of(published_split(376))), path)
    command = [sys.executable, "-m", "evads_tasks", "annotations", "summary", str(path)]
    done = subprocess.run([*command, "--json"], capture_output=True, text=True, cwd=REPO,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["videos"], summary["questions"], summary["per_split"]) == (
        376, 1880, {"sft": 1880})
    assert summary["per_task"] == {code: 376 for code in TASK_CODES}
    assert summary["inferred_share"] == 1.0


@pytest.mark.parametrize("content, message", [
    ("<video>Duration: 4s\n\n[Time-aligned Events]:\nTime 0s: ASR Text: \"hi\"\n\n"
     + INSTRUCTION, "no question line before the instruction"),
    ("<video>Duration: 4s\n\n[Time-aligned Events]:\nTime 0s: ASR Text: \"hi\"\n",
     "neither a 'Question:' line (RL split) nor a question line before the instruction"),
])
def test_a_prompt_without_its_question_names_file_row_and_field(tmp_path, content, message):
    rows = rows_of(published_split(2, first=50))
    rows[7]["prompt"] = [{"role": "user", "content": content}]
    path = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(AnnotationError) as caught:
        load_annotations(path)
    assert (caught.value.file, caught.value.row, caught.value.field) == (str(path), 7, "prompt")
    assert message in str(caught.value) and str(path) in str(caught.value)


def test_a_row_without_its_question_id_names_the_field(tmp_path):
    rows = rows_of(published_split(1, first=60))
    del rows[3]["extra_info"]["id"]
    with pytest.raises(AnnotationError) as caught:
        parse_rows(rows, "sft.jsonl")
    assert (caught.value.row, caught.value.field) == (3, "extra_info.id")


def test_the_lmms_eval_tasks_judge_the_answer_part_with_no_clues(sft_tree, published,
                                                                 monkeypatch, tmp_path):
    monkeypatch.setenv("EVADS_ANNOTATIONS", str(sft_tree / "annotations" / "sft.parquet"))
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path / "cache"))
    for name in ("EVADS_VIDEO_DIR", "EVADS_PROTOCOL", "EVADS_JUDGE", "EVADS_PROMPT"):
        monkeypatch.delenv(name, raising=False)
    video = published[0]
    index = video.tasks.index("CI")
    with JudgeServer(lambda messages: "Answer: 1.0") as server:
        monkeypatch.setenv("EVADS_JUDGE_BASE_URL", server.url)
        monkeypatch.setenv("EVADS_JUDGE_MODEL", "loopback")
        manager = TaskManager("ERROR", include_path=str(INCLUDE_PATH), include_defaults=False)
        task = manager.load_task_or_group(["evads_ci"])["evads_ci"]
        doc = next(d for d in task.test_docs() if d["video_id"] == video.video)
        reference = video.rows[index]["answer"].split("<answer>")[1].removesuffix("</answer>")
        assert (doc["question"], doc["answer"], doc["clues"], doc["metadata"]) == (
            video.questions[index], reference, "", video.metadata)
        assert task.doc_to_text(doc).startswith(video.metadata + "\n\n")
        process_results(doc, ["<answer>纯棉T恤</answer>"])
        sections = read_sections(server.requests[-1]["messages"][-1]["content"])
    assert sections[SECTION_METADATA] == video.metadata
    assert sections[SECTION_CLUES] == "(none)"  # judged as absent, never invented


def test_density_from_the_annotations(sft_tree, published, tmp_path):
    out = tmp_path / "density"
    done = subprocess.run([sys.executable, "-m", "evads_density",
                           str(sft_tree / "annotations" / "sft.parquet"), "--source",
                           "annotations", "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in (out / "per_video.jsonl").read_text().splitlines()]
    assert sorted(row["video_id"] for row in rows) == [v.video for v in published]
    assert all(not row.get("error") and row["annotations"]["asr_units"] > 0 for row in rows)


def test_the_sft_stage_trains_on_the_whole_answer(sft_tree, published):
    ds = build_dataset(sft_tree / "annotations" / "sft.parquet", "sft", sft_tree / "videos",
                       FrameSettings(num_frames=2, max_side=64))
    video = published[0]
    row = next(r for r in ds if r["question_id"] == video.rows[1]["extra_info"]["id"])
    assert row["completion"][0]["content"][0]["text"] == video.rows[1]["answer"]
    assert (row["question"], row["clues"], row["metadata"]) == (video.questions[1], "",
                                                                video.metadata)
    text = row["prompt"][0]["content"][-1]["text"]  # the authors' prompt as it is
    assert text.endswith(video.rows[1]["prompt"][0]["content"].removeprefix("<video>"))


def test_the_verl_export_adds_the_reward_model_verl_reads(sft_tree, published, tmp_path):
    out = write_verl_parquet(sft_tree / "annotations" / "sft.parquet", sft_tree / "videos",
                             tmp_path / "verl.parquet")
    row = pq.read_table(out).to_pylist()[0]
    video, first = published[0], published[0].rows[0]
    reference = first["answer"].split("<answer>")[1].removesuffix("</answer>")
    assert row["answer"] == first["answer"]  # released columns kept
    assert row["prompt"][0]["content"] == first["prompt"][0]["content"]
    assert row["reward_model"]["ground_truth"] == f"<answer>{reference}</answer>"
    assert row["reward_model"]["verifier"] == [{"clues": "", "meta_info": video.metadata}]
    assert row["extra_info"]["question"] == video.questions[0]
    assert row["extra_info"]["clues"] == "" and row["extra_info"]["meta_info"] == video.metadata
    assert row["videos"] == [{"video": str((sft_tree / "videos" / "701.mp4").resolve())}]


def test_the_qa_generator_reads_the_metadata_of_the_sample_sft_file(sample_dir, tmp_path):
    """``python -m evads_generate`` on the sample's SFT file (the published layout) against
    the scripted loopback LLM: every video is taken from its annotations, the agents are
    shown its time-aligned events (never the training prompt's instruction), and each video
    gets its five questions."""
    source = sample_dir / "annotations" / "sft.parquet"
    records = load_annotations(source)
    with JudgeServer(ScriptedAdLLM(sample_dir / "script.json")) as server:
        done = subprocess.run([sys.executable, "-m", "evads_generate", str(source), "--out",
                               str(tmp_path / "out"), "--llm-base-url", server.url,
                               "--llm-model", "scripted-ad-llm", "--language", "zh",
                               "--no-progress"], cwd=REPO, capture_output=True, text=True,
                              timeout=600)
        sent = [json.dumps(r["messages"], ensure_ascii=False) for r in server.requests]
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert f"`{source}` (annotations)" in report and "- videos: 2 (complete 2," in report
    generated = load_annotations(tmp_path / "out" / "annotations.parquet")
    assert sorted(r.video_id for r in generated) == ["ad_09"] * 5 + ["ad_10"] * 5
    for video in sorted({r.video_id for r in records}):
        events = next(r.metadata for r in records if r.video_id == video).splitlines()[4:]
        assert events and all(any(json.dumps(line, ensure_ascii=False)[1:-1] in body
                                  for body in sent) for line in events), video
    assert not any(INSTRUCTION[:40] in body for body in sent)
