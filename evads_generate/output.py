"""The files a run leaves: the new benchmark in the test schema, every candidate, video links.

- ``annotations.parquet`` and ``annotations.jsonl``: the published test schema (question,
  answer, ques_categories, goods_category, asr_input, video_id, ques_id, evidence,
  asr_ocr_meta), written by the annotation package's own writer, so
  ``EVADS_ANNOTATIONS=DIR/annotations.parquet`` loads it like the authors' file. Only
  videos with all five tasks, unless ``--allow-partial``.
- ``videos/<id>.mp4``: links to the source videos, so the suite finds them beside the file
  (its ``videos/`` lookup) without ``EVADS_VIDEO_DIR``. The test schema names every video
  ``<video_id>.mp4``; a source with another suffix is linked under that name (the decoders
  read the container, not the name).
- ``candidates.jsonl``: every candidate with its role, round, checks, status and reason,
  and the raw reply of the role call that proposed it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from evads_tasks.core.annotations import EvadsRecord, write_schema

from .perception import metadata_text
from .records import COMPLETE, PARTIAL, VideoResult

ANNOTATIONS = "annotations.parquet"
ANNOTATIONS_JSONL = "annotations.jsonl"
CANDIDATES = "candidates.jsonl"
VIDEOS = "videos"


def kept(results: Sequence[VideoResult], allow_partial: bool) -> list[VideoResult]:
    """The videos whose questions go into the benchmark."""
    wanted = (COMPLETE, PARTIAL) if allow_partial else (COMPLETE,)
    return [r for r in results if r.status in wanted and r.selected]


def to_records(result: VideoResult) -> list[EvadsRecord]:
    """The video's picks as annotation records (one per task, in task order)."""
    meta = result.meta
    if meta.source == "annotations":
        metadata = meta.metadata
    else:
        metadata = metadata_text(result.category, meta.duration, meta.events)
    records = []
    for pick in result.picks():
        records.append(EvadsRecord(
            question_id=f"{meta.video_id}_{pick.task}", video_id=meta.video_id,
            video_file=f"{meta.video_id}.mp4", question=pick.question, answer=pick.answer,
            task=pick.task, task_inferred=False, split="test", clues=pick.clues(),
            metadata=metadata, events=meta.events, category=result.category,
            duration=meta.duration,
            extra={"role": pick.role, "candidate": pick.id}))
    return records


def link_videos(results: Sequence[VideoResult], out_dir: Path) -> int:
    """``out/videos/<id>.mp4`` -> each kept video's source file; returns the links made."""
    folder = out_dir / VIDEOS
    made = 0
    for result in results:
        source = result.meta.video_path
        if not source or not Path(source).is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / f"{result.video_id}.mp4"
        if link.is_symlink() or link.exists():
            link.unlink()
        os.symlink(Path(source).resolve(), link)
        made += 1
    return made


def write_outputs(results: Sequence[VideoResult], out_dir: Path,
                  allow_partial: bool) -> dict:
    """Write the benchmark files and candidates.jsonl; returns what was written."""
    chosen = kept(results, allow_partial)
    records = [record for result in chosen for record in to_records(result)]
    for name in (ANNOTATIONS, ANNOTATIONS_JSONL):
        (out_dir / name).unlink(missing_ok=True)
    if records:
        write_schema(records, out_dir / ANNOTATIONS, "test")
        write_schema(records, out_dir / ANNOTATIONS_JSONL, "test")
    replies = {r["id"]: r.get("raw") for result in results for r in result.replies}
    with (out_dir / CANDIDATES).open("w", encoding="utf-8") as handle:
        for result in results:
            for candidate in result.candidates:
                row = {**candidate.to_dict(), "raw_reply": replies.get(candidate.reply_id)}
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"questions": len(records), "videos": len(chosen),
            "linked_videos": link_videos(chosen, out_dir)}
