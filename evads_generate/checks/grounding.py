"""Deterministic grounding: every quoted piece of evidence must be in the metadata, in the
modality it names, within ``window`` seconds of the time it gives.

Matching is exact after normalisation (Unicode NFKC, case folded, everything but letters
and digits removed), so spacing, punctuation and full-width forms do not matter but a
changed word does. The lines of the window are joined in time order first, so a spoken
sentence split over two per-second lines is still found. A quote shorter than
``MIN_QUOTE_CHARS`` normalised characters proves nothing and fails. ``visual`` evidence (a
description of the picture) cannot be matched against text: it is accepted, and counted as
unchecked, only when frames were shown to the proposer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from evads_tasks.core.annotations import Event

MIN_QUOTE_CHARS = 2
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
SOURCE_ALIASES = {
    "ocr": "ocr", "screen": "ocr", "text": "ocr", "subtitle": "ocr", "caption": "ocr",
    "on-screen text": "ocr", "asr": "asr", "speech": "asr", "audio": "asr", "voice": "asr",
    "voiceover": "asr", "visual": "visual", "picture": "visual", "image": "visual",
    "frame": "visual", "video": "visual",
}


def normalize(text: str | None) -> str:
    """Case- and width-folded letters and digits only: what quotes are compared on."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", text or "").casefold())


def source_of(name: str) -> str | None:
    """``ocr``, ``asr`` or ``visual`` for a source name an LLM may use; None if unknown."""
    return SOURCE_ALIASES.get(name.strip().lower())


def _text(events: Sequence[Event], source: str) -> str:
    if source == "ocr":
        return "".join(normalize(t) for e in events for t in e.ocr)
    return "".join(normalize(e.asr) for e in events)


def _in_window(events: Sequence[Event], start: float, end: float,
               window: float) -> list[Event]:
    low, high = min(start, end) - window, max(start, end) + window
    return [e for e in events if e.end >= low and e.start <= high]


def _where(events: Sequence[Event], quote: str, source: str) -> list[float]:
    """Seconds of the lines (or pairs of adjacent lines) holding ``quote``."""
    found = []
    for i, event in enumerate(events):
        pair = events[i:i + 2]
        if quote in _text([event], source) or (len(pair) == 2 and quote in _text(pair, source)):
            found.append(event.start)
    return found


def check_item(item: dict, events: Sequence[Event], window: float,
               frames_shown: bool) -> tuple[bool, str]:
    """(grounded, why) for one evidence item ``{source, start_s, end_s, quote}``."""
    source = source_of(str(item.get("source", "")))
    quote = normalize(item.get("quote"))
    start, end = float(item.get("start_s", 0)), float(item.get("end_s", item.get("start_s", 0)))
    if source is None:
        return False, f"unknown evidence source {item.get('source')!r}"
    if source == "visual":
        return (True, "visual evidence, not checkable against text (frames were shown)") \
            if frames_shown else (False, "visual evidence, but the proposer saw no frames")
    if len(quote) < MIN_QUOTE_CHARS:
        return False, f"quote {item.get('quote')!r} is too short to check"
    label = source.upper()
    ordered = sorted(events, key=lambda e: e.start)
    if quote in _text(_in_window(ordered, start, end, window), source):
        return True, f"{label} quote found within {window:g}s of {start:g}s"
    elsewhere = _where(ordered, quote, source)
    if elsewhere:
        return False, (f"{label} quote {item.get('quote')!r} is at "
                       f"{', '.join(f'{s:g}s' for s in elsewhere[:3])}, not within "
                       f"{window:g}s of {start:g}s")
    other = "asr" if source == "ocr" else "ocr"
    if quote in _text(ordered, other):
        return False, f"{label} quote {item.get('quote')!r} is {other.upper()} text, not {label}"
    return False, f"{label} quote {item.get('quote')!r} is not in the metadata"


def ground(evidence: Sequence[dict], events: Sequence[Event], window: float,
           frames_shown: bool = False) -> dict:
    """The grounding check's outcome: ``ok`` when there is evidence and every item holds."""
    items = [{"ok": ok, "detail": detail} for ok, detail in
             (check_item(item, events, window, frames_shown) for item in evidence)]
    failed = [item["detail"] for item in items if not item["ok"]]
    if not evidence:
        return {"ok": False, "detail": "no evidence given", "items": []}
    return {"ok": not failed, "detail": failed[0] if failed else
            f"all {len(items)} evidence item(s) found", "items": items}
