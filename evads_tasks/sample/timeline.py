"""Per-second OCR/ASR events of a scripted video, in the authors' ``Time Ns:`` granularity."""

from __future__ import annotations

import math

from evads_tasks.core.annotations import Event


def spoken_words(video: dict) -> dict[int, list[str]]:
    """Second -> the words spoken in it (each word belongs to the second of its midpoint)."""
    by_second: dict[int, list[str]] = {}
    for line in video["speech"]:
        for word in line["words"]:
            by_second.setdefault(math.floor(word["time"]), []).append(word["word"])
    return by_second


def screen_text(video: dict, second: int) -> tuple[str, ...]:
    """The overlay lines visible during ``second`` (overlays change only at whole seconds)."""
    return tuple(o["text"] for o in video["overlays"] if o["start"] <= second < o["end"])


def video_events(video: dict) -> tuple[Event, ...]:
    """One event per second that shows text or has speech."""
    words = spoken_words(video)
    events = []
    for second in range(math.ceil(video["duration"])):
        ocr = screen_text(video, second)
        asr = " ".join(words[second]) if second in words else None
        if ocr or asr:
            events.append(Event(float(second), float(second), ocr, asr))
    return tuple(events)
