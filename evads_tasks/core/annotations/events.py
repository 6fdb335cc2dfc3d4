"""Time-aligned OCR/ASR events: parsing and rendering the authors' metadata text.

The text looks like::

    Category: 服饰鞋包
    Duration: 26s

    [Time-aligned Events]:
    Time 8s: OCR Text: [可以穿到140斤] ; ASR Text: "穿到140斤"
    Time 23-25s: OCR Text: [EXIT]

OCR segments are joined by `` | `` and may themselves contain brackets, so the
OCR part is everything between ``OCR Text: [`` and the last ``]`` before the
ASR part. The RL prompt spells speech as ``Audio Speech: "..."``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

_TIME = re.compile(r"^Time\s+(\d+(?:\.\d+)?)(?:\s*-\s*(\d+(?:\.\d+)?))?s:\s?(.*)$")
_ASR_SPLIT = re.compile(r"(?:^|\s*;\s*)(?:ASR Text|Audio Speech):\s*")
_DURATION = re.compile(r"^Duration:\s*(\d+(?:\.\d+)?)\s*s\s*$")
_CATEGORY = re.compile(r"^Category:\s*(.+?)\s*$")
EVENTS_HEADER = "[Time-aligned Events]:"


@dataclass(frozen=True)
class Event:
    """What was on screen (OCR segments) and said (ASR) from ``start`` to ``end`` seconds."""

    start: float
    end: float
    ocr: tuple[str, ...] = ()
    asr: str | None = None

    def render(self, speech_label: str = "ASR Text") -> str:
        """One ``Time ...`` line in the authors' format."""
        when = _fmt_seconds(self.start) if self.end == self.start else (
            f"{_fmt_seconds(self.start)}-{_fmt_seconds(self.end)}")
        parts = []
        if self.ocr:
            parts.append(f"OCR Text: [{' | '.join(self.ocr)}]")
        if self.asr is not None:
            parts.append(f'{speech_label}: "{self.asr}"')
        return f"Time {when}s: " + " ; ".join(parts)


@dataclass(frozen=True)
class Metadata:
    """Everything the metadata text carries: header fields and the event list."""

    category: str | None
    duration: float | None
    events: tuple[Event, ...]


def _fmt_seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def parse_event_line(line: str) -> Event:
    """Parse one ``Time ...`` line; raises ValueError with the line when malformed."""
    match = _TIME.match(line.strip())
    if not match:
        raise ValueError(f"not a time-aligned event line: {line!r}")
    start = float(match.group(1))
    end = float(match.group(2)) if match.group(2) else start
    body = match.group(3)
    ocr_part, asr = body, None
    asr_match = _ASR_SPLIT.search(body)
    if asr_match:
        ocr_part = body[:asr_match.start()]
        asr_raw = body[asr_match.end():].strip()
        if len(asr_raw) >= 2 and asr_raw.startswith('"') and asr_raw.endswith('"'):
            asr_raw = asr_raw[1:-1]
        asr = asr_raw
    ocr: tuple[str, ...] = ()
    ocr_part = ocr_part.strip()
    if ocr_part:
        if not ocr_part.startswith("OCR Text:"):
            raise ValueError(f"unrecognised event content: {line!r}")
        text = ocr_part[len("OCR Text:"):].strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        ocr = tuple(seg.strip() for seg in text.split(" | ") if seg.strip())
    elif asr is None:
        raise ValueError(f"event line with neither OCR nor ASR text: {line!r}")
    return Event(start=start, end=end, ocr=ocr, asr=asr)


@lru_cache(maxsize=1024)
def parse_metadata(text: str) -> Metadata:
    """Parse a metadata block (header lines, then event lines); other lines are ignored.

    Raises ValueError naming the offending line when a ``Time`` line is malformed. Cached:
    the five questions of a video carry the same block (Metadata is immutable).
    """
    category = duration = None
    events = []
    for raw in (text or "").splitlines():
        line = raw.strip()
        # The RL prompt prefixes the duration line with "Voiceover: ".
        line = line.removeprefix("<video>").removeprefix("Voiceover:").strip()
        if not line:
            continue
        if line.startswith("Time "):
            events.append(parse_event_line(line))
        elif m := _DURATION.match(line):
            duration = float(m.group(1))
        elif m := _CATEGORY.match(line):
            category = m.group(1)
    return Metadata(category=category, duration=duration, events=tuple(events))


def render_metadata(category: str | None, duration: float | None, events: tuple[Event, ...],
                    speech_label: str = "ASR Text") -> str:
    """The metadata text in the authors' layout (inverse of :func:`parse_metadata`)."""
    lines = []
    if category:
        lines.append(f"Category: {category}")
    if duration is not None:
        lines.append(f"Duration: {_fmt_seconds(duration)}s")
    lines += ["", EVENTS_HEADER]
    lines += [event.render(speech_label) for event in events]
    return "\n".join(lines)

