"""Modality ablation of an lmms-eval video task: the same questions, judge and metrics, with
part of the model's input taken away.

Why: a video benchmark measures video understanding only as far as its questions need the
video. Run under these conditions, the gaps between them say how much does:

- ``full``: the task as it is (its visuals and its whole prompt);
- ``textonly``: the whole prompt (speech transcript, subtitles, metadata), no visual;
- ``blind``: the prompt without its non-visual context (the question and the instruction);
- ``videoonly``: the visuals and the prompt without its context;
- ``oneframe``: the middle frame of each video and the whole prompt.

Generic over tasks: :class:`Ablation` wraps a task's own ``doc_to_visual`` and ``doc_to_text``
and takes the names of the doc fields that carry the non-visual context (E-VAds: the ASR
text ``model_text``); blanking them in a copy of the doc is how a condition removes the
context, so the wording around it stays the task's own (under E-VAds' official protocol, the
authors' template). The leading blank lines an emptied context leaves are dropped. Only the
model's input changes: ``process_results`` (the judge) sees the doc as it is. A variant is a
task of its own in lmms-eval's convention: ``<base>_<condition>_<subtask>`` YAMLs naming
the functions an :class:`Ablation` makes (``evads_tasks.tasks.conditions`` does it for E-VAds).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from evads_tasks.core.video_probe import video_duration

VIDEO, FRAME, NO_VISUAL = "video", "middle frame", "none"
VideoFn = Callable[[dict], list]
TextFn = Callable[..., str]


@dataclass(frozen=True)
class Condition:
    """What the model is given: ``visual`` (VIDEO: the task's visuals; FRAME: the middle
    frame of each video; NO_VISUAL) and whether the prompt keeps its non-visual context."""

    name: str
    label: str
    visual: str
    context: bool


FULL = Condition("full", "full (video + text)", VIDEO, True)
TEXT_ONLY = Condition("textonly", "text only (no video)", NO_VISUAL, True)
BLIND = Condition("blind", "blind (question alone)", NO_VISUAL, False)
VIDEO_ONLY = Condition("videoonly", "video only (no ASR text)", VIDEO, False)
ONE_FRAME = Condition("oneframe", "one frame + text", FRAME, True)
CONDITIONS: dict[str, Condition] = {c.name: c for c in (FULL, TEXT_ONLY, BLIND, VIDEO_ONLY,
                                                         ONE_FRAME)}
# The conditions whose answers are given without the video (what a filter of questions
# answerable without it reads).
WITHOUT_VIDEO = tuple(c.name for c in CONDITIONS.values() if c.visual == NO_VISUAL)


def condition(name: str) -> Condition:
    """The condition called ``name``; ValueError listing them otherwise."""
    if name not in CONDITIONS:
        raise ValueError(f"unknown condition {name!r}: one of {', '.join(CONDITIONS)}")
    return CONDITIONS[name]


def variant_name(base: str, chosen: Condition, rest: str = "") -> str:
    """The lmms-eval name of a task or group under ``chosen``: ``evads`` + ``textonly`` +
    ``bp`` -> ``evads_textonly_bp``; the full condition keeps the task's own name."""
    parts = [base, *([] if chosen is FULL else [chosen.name]), *([rest] if rest else [])]
    return "_".join(parts)


def split_variant(base: str, name: str) -> tuple[Condition, str]:
    """(the condition, the rest of the name) of an lmms-eval task or group name made by
    :func:`variant_name`: ``evads_textonly_bp`` -> (TEXT_ONLY, ``bp``); ValueError when
    ``name`` is not one of ``base``'s."""
    if name != base and not name.startswith(base + "_"):
        raise ValueError(f"{name!r} is not a {base} task")
    rest = name[len(base) + 1:]
    head, _, tail = rest.partition("_")
    if head in CONDITIONS and head != FULL.name:
        return CONDITIONS[head], tail
    return FULL, rest


@lru_cache(maxsize=16)
def middle_frame(path: str) -> Any:
    """The frame shown at half the video's duration, as a PIL image (what lmms-eval's image
    models take). Cached: the questions of a video share it."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        duration = video_duration(container, stream)
        if not duration:
            raise ValueError(f"video {path}: duration unknown, no middle frame")
        target = duration / 2
        container.seek(int(target / stream.time_base), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is None or frame.time >= target:
                break
    if chosen is None:
        raise ValueError(f"video {path}: no frame decodes near {target:.2f} s")
    return chosen.to_image()


def _one_frame(visual: object) -> Any:
    """A visual under the one-frame condition: a video path becomes its middle frame, an
    image stays; anything else (a video given as a dict of frames or clips) is refused
    rather than passed whole."""
    from PIL import Image

    if isinstance(visual, (str, os.PathLike)):
        return middle_frame(os.fspath(visual))
    if isinstance(visual, Image.Image):
        return visual
    raise ValueError(f"the one-frame condition takes video paths or images, got a "
                     f"{type(visual).__name__}")


class Ablation:
    """A task's ``doc_to_visual`` and ``doc_to_text`` under each condition.

    ``context_fields``: the doc fields holding the prompt's non-visual context (speech
    transcript, subtitles); the conditions without context see them empty. Visuals given as
    paths are videos: under the one-frame condition each becomes its middle frame.
    """

    def __init__(self, doc_to_visual: VideoFn, doc_to_text: TextFn,
                 context_fields: Sequence[str]) -> None:
        if not context_fields:
            raise ValueError("name the doc fields that carry the non-visual context")
        self._visual, self._text = doc_to_visual, doc_to_text
        self.context_fields = tuple(context_fields)

    def visuals(self, chosen: Condition, doc: dict) -> list:
        """The visuals the model gets for ``doc`` under ``chosen``."""
        if chosen.visual == NO_VISUAL:
            return []
        visuals = self._visual(doc)
        if chosen.visual == FRAME:
            return [_one_frame(v) for v in visuals]
        return visuals

    def text(self, chosen: Condition, doc: dict, lmms_eval_specific_kwargs: dict | None = None
             ) -> str:
        """The prompt for ``doc`` under ``chosen``: the task's own, from a doc whose context
        fields are empty when the condition drops the context."""
        if chosen.context:
            return self._text(doc, lmms_eval_specific_kwargs)
        blanked = {**doc, **{field: "" for field in self.context_fields}}
        return self._text(blanked, lmms_eval_specific_kwargs).lstrip()

    def doc_to_visual(self, name: str) -> VideoFn:
        """The ``doc_to_visual`` of condition ``name`` (for a YAML's ``!function``)."""
        chosen = condition(name)

        def doc_to_visual(doc: dict) -> list:
            return self.visuals(chosen, doc)

        return doc_to_visual

    def doc_to_text(self, name: str) -> TextFn:
        """The ``doc_to_text`` of condition ``name`` (for a YAML's ``!function``)."""
        chosen = condition(name)

        def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
            return self.text(chosen, doc, lmms_eval_specific_kwargs)

        return doc_to_text
