"""Storyboards: which scenes, overlays and spoken lines each sample video has, and when.

Planning is pure and seeded (:func:`plan_videos`); timing (:func:`timed_script`)
takes the measured length of each spoken line, so the script that the videos,
the annotations and other engineers' tests share is right by construction.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from evads_tasks.core.annotations.categories import CATEGORIES

from .catalog import CLOSING, PRODUCTS, TRAINING_PRODUCTS, Beat, Claim, Product

FPS = 25
WIDTH, HEIGHT = 640, 360
MIN_DURATION, MAX_DURATION = 10, 16
SPEECH_LEAD = 0.2   # silence between a cut and the first line of the scene
SPEECH_GAP = 0.25   # silence between two lines of one scene
SPEECH_TAIL = 0.2   # silence after the last line before the next cut
MIN_MOTION_SCENE = 2
MIN_SILENT_SCENE = 3  # scenes of the video without voiceover
MIN_STILL_SCENE = 4  # the still price card: >= 3 s without any motion
SPEECH_LANGUAGE = "en"  # espeak-ng voice; English so the offline tiny.en ASR can check it
# The split of each training product's video, in TRAINING_PRODUCTS' order. Like the published
# splits (test 3,389 videos, SFT 376, RL 196), the sample's are disjoint by video: the test
# split has one video per category (ad_01..ad_08), then come two SFT and two RL videos.
TRAINING_SPLITS = ("sft", "sft", "rl", "rl")

# Saturated, mutually distinct scene backgrounds: every cut changes colour hard.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (200, 40, 50), (30, 110, 200), (30, 150, 80), (240, 160, 20), (120, 50, 170),
    (20, 160, 170), (230, 90, 140), (90, 90, 95), (150, 100, 40), (10, 40, 110),
)

# Scene roles by scene count; "offer" (price + promotion) is the still scene.
LAYOUTS: dict[int, tuple[tuple[str, ...], ...]] = {
    3: (("hook",), ("feature", "claim"), ("offer",)),
    4: (("hook",), ("feature",), ("claim",), ("offer",)),
    5: (("hook",), ("feature",), ("claim",), ("offer",), ("closing",)),
}


@dataclass(frozen=True)
class ScenePlan:
    roles: tuple[str, ...]
    beats: tuple[tuple[str, Beat], ...]  # (role, beat): hook, feature, claim, price, promo, closing
    overlays: tuple[tuple[str, str], ...]  # (role, text), the product title included
    still: bool
    background: tuple[int, int, int]
    phase: float  # where the product's little back-and-forth motion starts, in cycles


@dataclass(frozen=True)
class VideoPlan:
    video_id: str
    product: Product
    price: Beat
    claim: Claim
    has_audio: bool
    scenes: tuple[ScenePlan, ...]
    cm_role: str  # which spoken/overlay beat the cross-modal question anchors on
    split: str = "test"  # test, sft or rl

    def sentences(self) -> list[str]:
        """Every line the voiceover speaks, in order (empty for the silent video)."""
        return [b.speech for s in self.scenes for _, b in s.beats] if self.has_audio else []


def _beats(product: Product, price: Beat, claim: Claim, role: str) -> tuple[tuple[str, Beat], ...]:
    if role == "offer":
        return (("price", price), ("promo", product.promo))
    beats = {"hook": product.hook, "feature": product.feature, "closing": CLOSING,
             "claim": Beat(claim.overlay, claim.speech)}
    return ((role, beats[role]),)


def _plan(rng: random.Random, video_id: str, product: Product, has_audio: bool,
          split: str) -> VideoPlan:
    price = rng.choice(product.prices)
    claim = rng.choice(product.claims)
    layout = LAYOUTS[rng.choice(sorted(LAYOUTS))]
    colours = rng.sample(PALETTE, len(layout))
    scenes = []
    for roles, colour in zip(layout, colours, strict=True):
        beats = tuple(b for role in roles for b in _beats(product, price, claim, role))
        overlays = tuple((role, b.overlay) for role, b in beats)
        if "feature" in roles:
            overlays = (("title", product.title), *overlays)
        scenes.append(ScenePlan(roles, beats, overlays, still="offer" in roles,
                                background=colour, phase=round(rng.random(), 3)))
    return VideoPlan(video_id, product, price, claim, has_audio=has_audio,
                     scenes=tuple(scenes), cm_role=rng.choice(("feature", "claim")), split=split)


def plan_videos(seed: int) -> list[VideoPlan]:
    """The storyboards for a seed (pure: same seed, same plans): the eight test videos, one of
    them silent, then the training videos (their own random stream, so that the test videos
    are the same whatever the training splits hold)."""
    rng = random.Random(seed)
    silent = rng.randrange(len(PRODUCTS))
    plans = [_plan(rng, f"ad_{number + 1:02d}", product, number != silent, "test")
             for number, product in enumerate(PRODUCTS)]
    training = random.Random(f"{seed}:training")
    plans += [_plan(training, f"ad_{len(PRODUCTS) + number + 1:02d}", product, True, split)
              for number, (product, split) in enumerate(zip(TRAINING_PRODUCTS,
                                                            TRAINING_SPLITS, strict=True))]
    return plans


def _words(text: str) -> list[str]:
    return [w.strip(".,?!") for w in text.split() if w.strip(".,?!")]


def timed_script(plan: VideoPlan, speech_seconds: dict[str, float]) -> dict:
    """The script of one video, timed from the measured length of each spoken line.

    Each line starts at a planned time (after the cut, or after the previous
    line) and lasts its measured length; a scene lasts until its last line has
    finished (at least 2 s, 3 s without voiceover, 4 s for the still price card),
    and the still scene is stretched when the video would be shorter than 10 s. Words are spread
    evenly over their line, which is how the per-second ASR events are built.
    """
    scenes, speech, overlays = [], [], []
    start = 0
    for index, scene in enumerate(plan.scenes):
        cursor = start + SPEECH_LEAD
        lines = []
        for role, beat in scene.beats if plan.has_audio else ():
            length = speech_seconds[beat.speech]
            lines.append((role, beat, cursor, cursor + length))
            cursor += length + SPEECH_GAP
        spoken = (lines[-1][3] - start + SPEECH_TAIL) if lines else 0.0
        shortest = MIN_MOTION_SCENE if plan.has_audio else MIN_SILENT_SCENE
        length = max(MIN_STILL_SCENE if scene.still else shortest, math.ceil(spoken))
        scenes.append({"index": index, "roles": list(scene.roles), "start": start,
                       "end": start + length, "still": scene.still,
                       "background": list(scene.background), "phase": scene.phase})
        speech += [{"text": beat.speech, "start": round(a, 3), "end": round(b, 3), "role": role,
                    "language": SPEECH_LANGUAGE, "scene": index} for role, beat, a, b in lines]
        start += length
    shortfall = MIN_DURATION - start
    if shortfall > 0:  # stretch the still scene and shift what follows it
        still = next(s for s in scenes if s["still"])
        still["end"] += shortfall
        for later in scenes[still["index"] + 1:]:
            later["start"] += shortfall
            later["end"] += shortfall
        for line in speech:
            if line["scene"] > still["index"]:
                line["start"] = round(line["start"] + shortfall, 3)
                line["end"] = round(line["end"] + shortfall, 3)
    duration = scenes[-1]["end"]
    if duration > MAX_DURATION:
        raise ValueError(f"{plan.video_id}: storyboard runs {duration}s, over {MAX_DURATION}s")
    for scene, spec in zip(scenes, plan.scenes, strict=True):
        overlays += [{"text": text, "start": scene["start"], "end": scene["end"], "role": role,
                      "scene": scene["index"]} for role, text in spec.overlays]
    for line in speech:
        words = _words(line["text"])
        step = (line["end"] - line["start"]) / len(words)
        line["words"] = [{"word": w, "time": round(line["start"] + (i + 0.5) * step, 3)}
                         for i, w in enumerate(words)]
    product = plan.product
    return {
        "video_id": plan.video_id,
        "file": f"videos/{plan.video_id}.mp4",
        "category": product.category,
        "category_zh": CATEGORIES[product.category],
        "product": {"brand": product.brand, "name": product.name, "title": product.title,
                    "shape": product.shape, "colour": list(product.colour),
                    "price": plan.price.overlay, "promo": product.promo.overlay,
                    "feature": product.feature.overlay, "hook": product.hook.overlay,
                    "audience": product.audience, "pain": product.pain},
        "claim": {"text": plan.claim.overlay, "compliant": plan.claim.compliant,
                  "verdict": plan.claim.verdict},
        "cm_role": plan.cm_role,
        "split": plan.split,
        "duration": duration,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "has_audio": plan.has_audio,
        "speech_language": SPEECH_LANGUAGE if plan.has_audio else None,
        "scenes": scenes,
        "scene_cuts": [s["start"] for s in scenes[1:]],
        "still_intervals": [[s["start"], s["end"]] for s in scenes if s["still"]],
        "overlays": overlays,
        "speech": speech,
    }
