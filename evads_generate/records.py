"""What the generator produces per video: its metadata, the role replies, the candidates.

All of it is plain data that round-trips through JSON: ``VideoMeta`` is stored per video
(perception is the slow part of a raw-video run), ``VideoResult`` is appended to
``DIR/videos.jsonl`` when a video is finished, and everything in the final outputs is
derived from those rows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from evads_tasks.core.annotations import TASK_CODES, Event

# Candidate statuses: not decided yet, kept in the output, failed a check, or not needed.
PENDING, SELECTED, REJECTED, UNSELECTED = "pending", "selected", "rejected", "unselected"
# Video statuses: five questions, fewer (named), none possible, or to be finished by a rerun.
COMPLETE, PARTIAL, UNUSABLE, RETRY = "complete", "partial", "unusable", "retry"


def _span(start: float, end: float) -> str:
    return f"{start:g}s" if end == start else f"{start:g}-{end:g}s"


@dataclass(frozen=True)
class VideoMeta:
    """One video's time-aligned metadata, how it was obtained and what is wrong with it."""

    video_id: str
    source: str                      # "video" (perceived here) or "annotations" (as given)
    video_path: str | None
    category: str | None
    duration: float | None
    events: tuple[Event, ...]
    metadata: str                    # the authors' layout, as shown to every LLM call
    issues: tuple[str, ...] = ()     # named problems that leave the video usable
    error: str | None = None         # why the video cannot be used at all
    density: dict | None = None      # Vden/Aden/Oden of the perceived video
    backends: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["events"] = [{"start": e.start, "end": e.end, "ocr": list(e.ocr), "asr": e.asr}
                          for e in self.events]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> VideoMeta:
        events = tuple(Event(float(e["start"]), float(e["end"]), tuple(e["ocr"]), e["asr"])
                       for e in data["events"])
        return cls(**{**data, "events": events, "issues": tuple(data.get("issues") or ())})


@dataclass
class CandidateRecord:
    """One proposed question, the checks it went through and what became of it.

    ``checks`` maps a check name to its outcome (``ok`` plus what it saw: the failing quote,
    the duplicate's id, the answer and the judge's score); ``rejection`` is the short reason
    code of the first failed check and ``reason`` says it in words.
    """

    id: str
    video_id: str
    role: str
    round: int
    task: str
    question: str
    answer: str
    evidence: list[dict]
    modalities: list[str]
    rationale: str
    reply_id: str
    checks: dict[str, dict] = field(default_factory=dict)
    status: str = PENDING
    rejection: str | None = None
    reason: str | None = None

    def reject(self, code: str, reason: str) -> None:
        self.status, self.rejection, self.reason = REJECTED, code, reason

    def clues(self) -> str:
        """The evidence as the benchmark's clues text: each quote with its modality and
        seconds, then the rationale."""
        cited = "; ".join(
            f"{str(e['source']).upper()} {_span(e['start_s'], e['end_s'])}: “{e['quote']}”"
            for e in self.evidence)
        return " ".join(part for part in (f"{cited}." if cited else "", self.rationale) if part)

    @property
    def open(self) -> bool:
        """Not rejected yet: still a possible pick."""
        return self.status != REJECTED

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class VideoResult:
    """The finished work on one video: replies, candidates, the five picks, the verdict."""

    meta: VideoMeta
    status: str
    category: str | None
    replies: list[dict]
    candidates: list[CandidateRecord]
    selected: dict[str, str]          # task -> candidate id
    problems: list[str]
    calls: dict = field(default_factory=dict)   # this video's CallStats, as a dict

    @property
    def video_id(self) -> str:
        return self.meta.video_id

    def picks(self) -> list[CandidateRecord]:
        """The selected candidates in task order."""
        by_id = {c.id: c for c in self.candidates}
        return [by_id[self.selected[task]] for task in TASK_CODES if task in self.selected]

    def to_dict(self) -> dict:
        return {"video_id": self.video_id, "status": self.status, "category": self.category,
                "meta": self.meta.to_dict(), "replies": self.replies,
                "candidates": [c.to_dict() for c in self.candidates],
                "selected": self.selected, "problems": self.problems, "calls": self.calls}

    @classmethod
    def from_dict(cls, data: dict) -> VideoResult:
        return cls(VideoMeta.from_dict(data["meta"]), data["status"], data["category"],
                   data["replies"], [CandidateRecord(**c) for c in data["candidates"]],
                   data["selected"], data["problems"], data.get("calls") or {})
