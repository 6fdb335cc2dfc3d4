"""Pure parts of the density analyzer: counting units, Vden, rates, OCR policies, events."""

from __future__ import annotations

import numpy as np
import pytest

from evads_density.analysis import Settings, measure_annotations, per_second_texts
from evads_density.metrics import VdenSettings, distribution, neighbour_similarities, rate, vden
from evads_density.ocr import frame_changed, ocr_schedule, screen_units
from evads_density.report import backends_used, summarize
from evads_tasks.core.annotations import Event, parse_metadata
from evads_tasks.core.text_units import count_units


@pytest.mark.parametrize("text, units", [
    ("可以穿到140斤", 6),          # 5 CJK characters + one number
    ("Buy 2 get 1 free!", 5),
    ("iPhone 限时 ¥5.99 don't miss", 6),
    ("，。！  ...", 0),
    ("", 0),
    (None, 0),
])
def test_count_units_counts_cjk_characters_latin_words_and_numbers(text, units):
    assert count_units(text) == units


def test_still_frames_score_zero_and_cuts_score_high():
    rng = np.random.default_rng(0)
    still = np.tile(rng.normal(size=16), (20, 1))
    assert vden(neighbour_similarities(still)) == pytest.approx(0.0, abs=1e-9)
    # Two frames per scene (a cut every second at 2 frames/s), scenes orthogonal.
    scenes = np.eye(10)
    cuts = np.repeat(scenes, 2, axis=0)
    sims = neighbour_similarities(cuts, window=2, decay=1.0)
    # Inner frames: one same-scene neighbour (weight 1) of 3 total weight -> S = 1/3.
    assert sims[2:-2] == pytest.approx(np.full(16, 1 / 3))
    assert vden(sims, alpha=100) > 60


def test_neighbour_weights_follow_decay_and_window():
    feats = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Frame 0: d=1 -> 1.0 (weight 1), d=2 -> 0.0 (weight 1/2**2 with decay 2).
    assert neighbour_similarities(feats, window=2, decay=2.0)[0] == pytest.approx(1 / 1.25)
    assert neighbour_similarities(feats, window=1)[0] == pytest.approx(1.0)
    assert neighbour_similarities(feats[:1])[0] == 1.0
    with pytest.raises(ValueError, match="2-D"):
        neighbour_similarities(np.zeros(3))
    with pytest.raises(ValueError, match="invalid Vden"):
        VdenSettings(fps=0)


def test_rate_and_distribution():
    assert rate(10, 4) == 2.5
    with pytest.raises(ValueError, match="positive"):
        rate(1, 0)
    stats = distribution([1.0, 2.0, None, 3.0, 4.0])
    assert stats["n"] == 4 and stats["mean"] == 2.5 and stats["median"] == 2.5
    assert stats["p10"] == pytest.approx(1.3) and stats["p90"] == pytest.approx(3.7)
    assert distribution([None])["mean"] is None


def test_screen_text_policies():
    frames = [("限时特价",), ("限时特价",), ("限时特价",), (), ("限时特价", "Buy now")]
    # per-second: every second on screen counts again (4 + 4 + 4 + 0 + 6).
    assert screen_units(frames, [1.0] * 5, "per-second") == 18
    assert screen_units(frames, [0.5] * 5, "per-second") == 9
    # A frame that stays on screen longer weighs more.
    assert screen_units(frames, [3.0, 1, 1, 1, 0.5], "per-second") == 12 + 4 + 4 + 3
    # unique: once per appearance; it reappears after leaving the screen.
    assert screen_units(frames, [1.0] * 5, "unique") == 4 + 4 + 2
    # OCR noise on a text still on screen is not a new text.
    assert screen_units([("限时特价全场五折",), ("限时特价全场五拆",)], [1, 1], "unique") == 8
    with pytest.raises(ValueError, match="--ocr-count"):
        screen_units(frames, [1.0] * 5, "sometimes")
    with pytest.raises(ValueError, match="5 frames but 2 durations"):
        screen_units(frames, [1.0, 1.0], "per-second")


@pytest.mark.parametrize("times, slack, expected", [
    # 25 frames/s source sampled at 2/s: one look per second, each a different frame.
    ([0.0, 0.52, 1.0, 1.52, 2.0, 2.52], 0.25, [(0, 1.0), (2, 1.0), (4, 1.0)]),
    # 1 frame/s source: every frame is looked at, each on screen for 1 s.
    ([0.0, 1.0, 2.0], 0.25, [(0, 1.0), (1, 1.0), (2, 1.0)]),
    # 0.5 frames/s source: a frame shown for 2 s counts 2 s (the frame at 2 s is not on
    # screen at 1 s).
    ([0.0, 2.0], 0.25, [(0, 2.0), (1, 1.0)]),
    # Time stamps a little late (stream offset) still count from the look they serve.
    ([0.04, 1.04, 2.04], 0.25, [(0, 1.0), (1, 1.0), (2, 1.0)]),
])
def test_ocr_looks_are_chosen_by_time_and_weighed_by_time_on_screen(times, slack, expected):
    picks = ocr_schedule(times, 1.0, 3.0, slack)
    assert picks == expected
    assert sum(seconds for _, seconds in picks) == pytest.approx(3.0)


def test_ocr_schedule_partial_last_second_and_faster_looks():
    assert ocr_schedule([0.0, 1.0, 2.0, 3.0], 1.0, 3.5) == [(0, 1.0), (1, 1.0), (2, 1.0),
                                                           (3, 0.5)]
    # Looking twice a second at a 1 frame/s source merges the looks on the same frame.
    assert ocr_schedule([0.0, 1.0], 2.0, 2.0) == [(0, 1.0), (1, 1.0)]
    with pytest.raises(ValueError, match="ocr_fps > 0"):
        ocr_schedule([0.0], 0.0, 2.0)


def test_frame_change_threshold():
    a = np.zeros((18, 32), np.float32)
    assert frame_changed(None, a, 0.02)
    assert not frame_changed(a, a + 0.01, 0.02)
    assert frame_changed(a, a + 0.05, 0.02)


def test_annotation_densities_from_events():
    meta = parse_metadata("Duration: 4s\n[Time-aligned Events]:\n"
                          'Time 0s: OCR Text: [新品上市] ; ASR Text: "新品上市啦"\n'
                          "Time 1-2s: OCR Text: [¥99 | 包邮]\n"
                          'Time 3s: ASR Text: "buy it now"')
    assert per_second_texts(meta.events, 4.0) == [("新品上市",), ("¥99", "包邮"),
                                                  ("¥99", "包邮"), ()]
    result = measure_annotations(meta.events, meta.duration, "per-second")
    assert result["asr_units"] == 8 and result["aden"] == 2.0
    assert result["ocr_units"] == 4 + 3 + 3 and result["oden"] == 2.5
    assert measure_annotations(meta.events, meta.duration, "unique")["ocr_units"] == 7
    # Without a Duration header: one second past the last event.
    events = (Event(0, 0, (), "你好"), Event(1, 1, (), "再见"))
    assert measure_annotations(events, None, "per-second")["duration"] == 2.0


def test_settings_reject_bad_values_naming_them():
    with pytest.raises(ValueError, match=r"ocr_fps=0.*max_side=8"):
        Settings(ocr_fps=0, max_side=8)
    with pytest.raises(ValueError, match="max_seconds=-1"):
        Settings(max_seconds=-1)
    with pytest.raises(ValueError, match="ocr_count='sometimes'"):
        Settings(ocr_count="sometimes")


def test_resume_compares_only_settings_that_change_the_chosen_sources_numbers():
    notes = Settings(source="annotations")
    assert notes.affecting_numbers() == Settings(
        source="annotations", asr="none", asr_model="x", ocr_fps=5,
        vden=VdenSettings(alpha=3)).affecting_numbers()
    assert notes.affecting_numbers() != Settings(source="annotations",
                                                 ocr_count="unique").affecting_numbers()
    quiet = Settings(asr="none", ocr="none")
    assert quiet.affecting_numbers() == Settings(asr="none", ocr="none", asr_language="zh",
                                                 ocr_fps=3).affecting_numbers()
    assert quiet.affecting_numbers() != Settings(asr="none", ocr="none",
                                                 visual_model="x").affecting_numbers()
    assert Settings.from_dict(Settings(ocr_fps=2).to_dict()) == Settings(ocr_fps=2)


def _row(video_id, source, error=None, **values):
    row = {"video_id": video_id, "backends": {"visual": "pixels"}, **values}
    row.update({source: dict(values)} if source else {})
    if error:
        row.update(error=error, vden=None, aden=None, oden=None)
    return row


def test_error_rows_are_left_out_of_overall_and_per_source_numbers_alike():
    rows = [_row("a", "annotations", aden=4.0, oden=10.0),
            _row("b", "annotations", aden=6.0, oden=20.0),
            # both-mode row: its annotations were read but its video failed
            _row("c", "annotations", error="video: file not found", aden=100.0, oden=100.0)]
    summary = summarize(rows, {}, {})
    assert summary["failed"] == 1 and summary["aden"]["n"] == 2
    per_source = summary["sources"]["annotations"]
    assert per_source["videos"] == 2 and per_source["aden"]["mean"] == summary["aden"]["mean"] == 5


def test_backends_used_names_every_backend_that_produced_rows():
    rows = [{"backends": {"visual": "pixels", "units": "u"}},
            {"backends": {"visual": "dino", "units": "u"}},
            {"backends": {"visual": "pixels", "units": "u"}},
            {"backends": {}}]   # a crashed worker's row names none
    assert backends_used(rows) == {"visual": "pixels (2 videos); dino (1 videos)", "units": "u"}
