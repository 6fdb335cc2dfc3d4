"""The run folder as resume state: what was asked for, what was perceived, what is done.

- ``settings.json``: the input, the LLM (model and endpoint, never the key), the judge and
  every setting that changes what is asked or kept. A rerun with other values is refused,
  naming them, unless ``--fresh`` (which starts the folder over; the reply cache stays, so
  only new prompts are paid for).
- ``perception.jsonl``: one row per perceived raw video, appended as each is done.
- ``videos.jsonl``: one row per finished video (``VideoResult``), appended as each is done;
  the last row of a video wins, and a ``retry`` row is done again by the next run.

Rows are appended and flushed one by one with the density runner's writer, whose reader
drops a half-written last line, so a kill loses at most the video in progress, whose
replies are in the cache anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

from evads_density.cli import changed_settings
from evads_density.runner import read_finished
from evads_tasks.core.write_failure import appending

from . import output, report
from .records import RETRY, VideoMeta, VideoResult

SETTINGS = "settings.json"
PERCEPTION = "perception.jsonl"
VIDEOS = "videos.jsonl"
CACHE = "cache"
# What --fresh removes: the run's own files, never the cache or unrelated files.
RUN_FILES = (SETTINGS, PERCEPTION, VIDEOS, output.ANNOTATIONS, output.ANNOTATIONS_JSONL,
             output.CANDIDATES, report.REPORT, report.CHART, report.SUMMARY)
# Files it removes inside folders (the links to the videos, the density report): a folder
# that holds anything else, such as the user's own videos, keeps it.
RUN_FOLDERS = {output.VIDEOS: None,
               report.DENSITY: ("report.md", "density.png", "summary.json")}


RESUME = "every finished video is kept: free space and rerun the same command to resume"


class SettingsMismatch(ValueError):
    """The folder holds a run made with other settings; the message lists the changes."""


class RunFolder:
    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir

    def start(self, recorded: dict, fresh: bool) -> None:
        """Create the folder, or check that it holds a run of the same settings."""
        if fresh:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for name, files in RUN_FOLDERS.items():
                folder = self.path / name
                if not folder.is_dir():
                    continue
                for entry in folder.iterdir():
                    if entry.is_symlink() if files is None else entry.name in files:
                        entry.unlink()
                if not any(folder.iterdir()):
                    folder.rmdir()
        self.path.mkdir(parents=True, exist_ok=True)
        settings = self.path / SETTINGS
        if settings.exists() and not self._cut_short(settings):
            before = json.loads(settings.read_text(encoding="utf-8"))
            if changes := changed_settings(before, recorded):
                raise SettingsMismatch(
                    f"{self.path} holds a run with other settings ({'; '.join(changes)}): "
                    "rerun with the same ones to resume, or pass --fresh to start over")
        else:
            settings.write_text(json.dumps(recorded, ensure_ascii=False, indent=2),
                                encoding="utf-8")

    def _cut_short(self, settings: Path) -> bool:
        """A settings file a full disk left empty or cut, before any video was written: the
        run never started, so it starts now."""
        try:
            json.loads(settings.read_text(encoding="utf-8"))
            return False
        except ValueError:
            if (self.path / VIDEOS).exists() or (self.path / PERCEPTION).exists():
                raise SettingsMismatch(f"{settings} is not JSON but the folder holds "
                                       "videos: pass --fresh to start over") from None
            return True

    def perceived(self) -> dict[str, VideoMeta]:
        return {row["video_id"]: VideoMeta.from_dict(row)
                for row in read_finished(self.path / PERCEPTION)}

    def results(self) -> dict[str, VideoResult]:
        """The latest row of every video written so far (retry rows included)."""
        return {row["video_id"]: VideoResult.from_dict(row)
                for row in read_finished(self.path / VIDEOS)}

    def finished(self) -> dict[str, VideoResult]:
        """The videos a rerun does not touch again."""
        return {vid: r for vid, r in self.results().items() if r.status != RETRY}

    def open_perception(self):
        return appending(self.path / PERCEPTION, RESUME)

    def open_videos(self):
        return appending(self.path / VIDEOS, RESUME)
