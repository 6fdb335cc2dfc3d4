"""The modality audit's parts, self-contained: the condition tasks as lmms-eval builds them
(under both protocols), the generic ablation on another task's functions, the audit's
figures on known scores, the filter file and the trainers' exclusion step.

The real lmms-eval runs of the conditions (tiny model, API model, ``make rl EXCLUDE=``) are in
``tests/test_audit_runs.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lmms_eval.tasks import TaskManager
from paths import REPO, needs_official_eval
from test_official_protocol import ROWS, SCRIPTS, authors_sample, reference
from test_tasks import METADATA, benchmark  # noqa: F401 - the two-video benchmark fixture

from evads_rl.data import read_records
from evads_tasks.core.annotations import TASK_CODES, parse_rows
from evads_tasks.core.without_video import (
    answerable_without_video,
    check_threshold,
    read_filter,
    write_filter,
)
from evads_tasks.runs.audit import ConditionRun, audit, without_video
from evads_tasks.runs.scored_runs import ScoredSample
from evads_tasks.tasks import INCLUDE_PATH, utils
from evads_tasks.tasks.ablation import CONDITIONS, FULL, Ablation, middle_frame, split_variant
from evads_tasks.tasks.conditions import EVADS_ABLATION, condition_of_task, group_of, task_of
from evads_tasks.tasks.utils import EVADS_INSTRUCTION

VARIANTS = [c for c in CONDITIONS.values() if c is not FULL]


@pytest.fixture(scope="module")
def task_manager() -> TaskManager:
    return TaskManager("ERROR", include_path=str(INCLUDE_PATH), include_defaults=False)


# ---- the condition tasks ---------------------------------------------------------------

def test_every_condition_has_its_five_tasks_and_three_groups(task_manager):
    for condition in VARIANTS:
        tasks = {task_of(condition, code) for code in TASK_CODES}
        groups = {group_of(condition, s) for s in ("", "perception", "reasoning")}
        assert tasks | groups <= set(task_manager.all_tasks)
        for name in tasks:
            path = Path(task_manager.task_index[name]["yaml_path"])
            assert path.parent == INCLUDE_PATH / condition.name  # its own YAML
            assert condition_of_task(name) == (condition, name.rsplit("_", 1)[1].upper())
        assert task_manager.task_index[group_of(condition)]["type"] == "group"
    assert condition_of_task("evads_bp") == (FULL, "BP")
    with pytest.raises(ValueError, match="not an E-VAds task"):
        condition_of_task("evads_textonly_perception")
    with pytest.raises(ValueError, match="not a evads task"):
        split_variant("evads", "videomme_textonly")


def _task(task_manager, name):
    return task_manager.load_task_or_group([name])[name]


def test_what_each_condition_gives_the_model(task_manager, benchmark):  # noqa: F811
    question = "Consumer Insight question about video 101?"
    full = _task(task_manager, "evads_ci")
    doc = next(iter(full.test_docs()))
    video = str(benchmark / "videos" / "101.mp4")
    protocol_text = f"{METADATA}\n\n{EVADS_INSTRUCTION}\n{question}"
    blind_text = f"{EVADS_INSTRUCTION}\n{question}"
    assert (full.doc_to_visual(doc), full.doc_to_text(doc)) == ([video], protocol_text)
    expected = {"textonly": ([], protocol_text), "blind": ([], blind_text),
                "videoonly": ([video], blind_text)}
    for name, (visuals, text) in expected.items():
        task = _task(task_manager, f"evads_{name}_ci")
        variant_doc = next(iter(task.test_docs()))
        assert variant_doc == doc  # the same questions, ids and judge inputs
        assert (task.doc_to_visual(variant_doc), task.doc_to_text(variant_doc)) == (visuals,
                                                                                     text)
    one_frame = _task(task_manager, "evads_oneframe_ci")
    (image,) = one_frame.doc_to_visual(doc)
    assert image.size == (64, 36) and one_frame.doc_to_text(doc) == protocol_text
    # the same task configuration otherwise: judge, metrics, generation
    for name in ("evads_textonly_ci", "evads_oneframe_ci"):
        config = _task(task_manager, name).config
        assert config.process_results is full.config.process_results
        assert config.metric_list == full.config.metric_list
        assert config.generation_kwargs == full.config.generation_kwargs


@pytest.mark.parametrize("script", ["synthetic",
                                    pytest.param("authors", marks=needs_official_eval)])
def test_official_protocol_conditions_are_the_authors_prompt_less_an_input(
        script, monkeypatch, tmp_path):
    """Text only: the authors' input_question byte for byte, with no video; blind and video
    only: the same statements run on a sample whose asr_input is empty."""
    path, *_ = SCRIPTS[script]
    authors = reference(*SCRIPTS[script])
    monkeypatch.setenv("EVADS_PROTOCOL", "official")
    monkeypatch.setenv("EVADS_OFFICIAL_EVAL", str(path))
    monkeypatch.setenv("EVADS_CACHE_DIR", str(tmp_path))
    for row, record in zip(ROWS, parse_rows(ROWS, "rows.jsonl"), strict=True):
        doc = utils._doc(record, Path(f"/videos/{record.video_id}.mp4"), 0)
        sample = authors_sample(row)
        without_asr = authors.input_question({**sample, "asr_input": ""}).lstrip()
        texts = {name: EVADS_ABLATION.text(condition, doc) for name, condition
                 in CONDITIONS.items()}
        assert texts["full"] == texts["textonly"] == texts["oneframe"] == \
            authors.input_question(sample)
        assert texts["blind"] == texts["videoonly"] == without_asr
        assert row["asr_input"] not in without_asr


def test_the_middle_frame_is_the_one_shown_at_half_the_duration(tmp_path):
    """Red, then green, then blue for a second each: the frame at 1.5 s is green."""
    video = tmp_path / "rgb.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
                    "color=c=red:s=32x32:r=10:d=1", "-f", "lavfi", "-i",
                    "color=c=green:s=32x32:r=10:d=1", "-f", "lavfi", "-i",
                    "color=c=blue:s=32x32:r=10:d=1", "-filter_complex",
                    "[0][1][2]concat=n=3:v=1", "-c:v", "libx264", "-g", "30",
                    "-pix_fmt", "yuv420p", str(video)], check=True)
    red, green, blue = np.asarray(middle_frame(str(video))).reshape(-1, 3).mean(axis=0)
    assert green > 100 and red < 60 and blue < 60


def test_the_ablation_is_generic_over_a_tasks_own_functions():
    """Another benchmark's task (subtitles as its context, a list of videos) gets the same
    conditions from its own doc_to_visual / doc_to_text."""
    def doc_to_visual(doc):
        return [doc["clip"]]

    def doc_to_text(doc, kwargs=None):
        subtitles = f"Subtitles: {doc['subtitles']}\n" if doc["subtitles"] else ""
        return f"{(kwargs or {}).get('pre', '')}{subtitles}Q: {doc['q']}"

    ablation = Ablation(doc_to_visual, doc_to_text, ["subtitles"])
    doc = {"clip": "/v/1.mp4", "subtitles": "hello", "q": "what?"}
    assert ablation.doc_to_text("textonly")(doc, {"pre": ">"}) == ">Subtitles: hello\nQ: what?"
    assert ablation.doc_to_visual("textonly")(doc) == []
    assert ablation.doc_to_text("blind")(doc) == "Q: what?"
    assert ablation.doc_to_visual("videoonly")(doc) == ["/v/1.mp4"]
    assert doc["subtitles"] == "hello"  # the doc itself is left alone (the judge reads it)
    with pytest.raises(ValueError, match="unknown condition 'mute'"):
        ablation.doc_to_text("mute")
    clips = Ablation(lambda doc: [{"type": "video", "url": doc["clip"]}], doc_to_text,
                     ["subtitles"])
    with pytest.raises(ValueError, match="one-frame condition takes video paths or images"):
        clips.doc_to_visual("oneframe")(doc)


# ---- the audit's figures on known scores --------------------------------------------------

def _run(condition: str, scores: dict[str, float | None]) -> ConditionRun:
    """Questions ``<video>-<task>`` scored as given."""
    samples = {qid: ScoredSample(question_id=qid, task=qid.split("-")[1], category="Others",
                                 score=score, judge="j", video_id=qid.split("-")[0],
                                 condition=condition) for qid, score in scores.items()}
    return ConditionRun(condition, samples, {"source": condition})


def test_gaps_and_shortcut_share_on_known_scores():
    full = {"v1-BP": 1.0, "v1-CM": 0.75, "v2-BP": 0.5, "v2-CM": 0.25, "v3-BP": 1.0,
            "v3-CM": None}
    text = {"v1-BP": 1.0, "v1-CM": 0.25, "v2-BP": 0.75, "v2-CM": 0.0, "v3-BP": 0.5,
            "v3-CM": 1.0}
    blind = {"v1-BP": 0.0, "v1-CM": 0.0, "v2-BP": 0.25, "v2-CM": None, "v3-BP": 0.0,
             "v3-CM": 0.0}
    rows = audit({"full": _run("full", full), "textonly": _run("textonly", text),
                  "blind": _run("blind", blind)})
    overall = rows["dimensions"]["Overall"]
    both = [q for q in full if full[q] is not None and text[q] is not None]
    visual = overall["gaps"]["textonly"]["interval"]
    assert visual.mean == pytest.approx(np.mean([full[q] - text[q] for q in both]))
    assert visual.n == 5 and visual.clusters == 3 and visual.low <= visual.mean <= visual.high
    blind_gap = overall["gaps"]["blind"]["interval"]
    judged = [q for q in full if full[q] is not None and blind[q] is not None]
    assert blind_gap.mean == pytest.approx(np.mean([full[q] - blind[q] for q in judged]))
    assert blind_gap.n == 4
    share = overall["shortcut share"]
    assert share.mean == pytest.approx(np.mean([text[q] >= full[q] for q in both]))  # 2 of 5
    bp = rows["tasks"]["BP Basic Perception"]
    assert bp["gaps"]["textonly"]["interval"].mean == pytest.approx((0 - 0.25 + 0.5) / 3)
    assert bp["means"]["full"].mean == pytest.approx(2.5 / 3)
    assert set(rows["dimensions"]) == {"Perception", "Overall"}  # no reasoning questions
    one_video = audit({"full": _run("full", {"v1-BP": 1.0, "v1-CM": 0.5}),
                       "textonly": _run("textonly", {"v1-BP": 0.5, "v1-CM": 0.5})})
    alone = one_video["dimensions"]["Overall"]["gaps"]["textonly"]["interval"]
    assert alone.mean == 0.25 and np.isnan(alone.low) and np.isnan(alone.high)  # no interval


def test_the_filter_is_the_one_definition_of_answerable_without_the_video(tmp_path):
    run = _run("textonly", {"v1-BP": 0.75, "v1-CM": 0.5, "v2-BP": 1.0, "v2-CM": None})
    ids, unscored = without_video(run, 0.75)
    assert ids == ["v1-BP", "v2-BP"] and unscored == 1
    assert [answerable_without_video(s) for s in (0.75, 0.5, None)] == [True, False, None]
    path = write_filter(tmp_path / "f.json", ids, threshold=0.75, condition="textonly",
                        facts={"run": "x"})
    read = read_filter(path)
    assert read.question_ids == {"v1-BP", "v2-BP"} and read.threshold == 0.75
    assert "answerable without the video (textonly score >= 0.75)" in read.describe()
    plain = tmp_path / "ids.txt"
    plain.write_text("# made by hand\nv1-BP\n\nv3-RC  # a comment\n", encoding="utf-8")
    assert read_filter(plain).question_ids == {"v1-BP", "v3-RC"}
    broken = tmp_path / "broken.json"
    broken.write_text('{"question_ids": "v1-BP"}', encoding="utf-8")
    with pytest.raises(ValueError, match=f"{broken}: expected 'question_ids'"):
        read_filter(broken)
    with pytest.raises(ValueError, match=r"--threshold must be in \(0, 1\]"):
        check_threshold(0, "--threshold")


def test_the_trainers_read_the_rows_the_filter_leaves(sample_dir, tmp_path, capsys):
    source = sample_dir / "annotations" / "rl.parquet"
    everything = read_records(source)
    ids = [record.question_id for _, record in everything]
    path = write_filter(tmp_path / "f.json", [ids[0], ids[7], "not-in-this-file"],
                        threshold=0.75, condition="textonly", facts={})
    kept = read_records(source, path)
    assert [r.question_id for _, r in kept] == [q for q in ids if q not in (ids[0], ids[7])]
    assert f"{len(ids) - 2} of {len(ids)} rows kept, 2 excluded by 3 question id(s)" in \
        capsys.readouterr().out
    other = write_filter(tmp_path / "other.json", ["x"], threshold=0.75, condition="textonly",
                         facts={})
    assert len(read_records(source, other)) == len(ids)
    assert "none of its ids is in this file" in capsys.readouterr().out


def test_verl_export_leaves_out_the_filtered_rows(sample_dir, tmp_path):
    import pyarrow.parquet as pq

    source = sample_dir / "annotations" / "rl.parquet"
    ids = [record.question_id for _, record in read_records(source)]
    path = write_filter(tmp_path / "f.json", ids[:3], threshold=0.75, condition="textonly",
                        facts={})
    out = tmp_path / "train.parquet"
    done = subprocess.run([sys.executable, "-m", "evads_rl", "verl-data", str(source),
                           "--video-dir", str(sample_dir / "videos"), "--out", str(out),
                           "--exclude", str(path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = pq.read_table(out).to_pylist()
    assert [row["extra_info"]["id"] for row in rows] == ids[3:]
    missing = subprocess.run([sys.executable, "-m", "evads_rl", "verl-data", str(source),
                              "--out", str(out), "--exclude", str(tmp_path / "none.json")],
                             cwd=REPO, capture_output=True, text=True)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: filter file {tmp_path / 'none.json'} not found"
