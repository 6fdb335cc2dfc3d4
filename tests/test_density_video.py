"""The video source on generated clips with known content (real decode, ASR, OCR models)."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evads_density.analysis import Settings, analyse, load_backends, measure_video
from evads_density.cli import EXIT_FAILED_VIDEOS, main
from evads_density.decode import DecodeError
from evads_density.features import OFFLINE_PIXELS, TransformersVision
from evads_density.sources import VideoJob
from evads_density.synthetic import Scene, make_clip, speech_seconds

SENTENCE = ("Our new summer shirt keeps you cool and dry, and today it costs only "
            "twenty dollars with free shipping.")
OVERLAYS = ("夏日清凉 T恤", "限时特价 99元", "Buy now")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    spoken = speech_seconds(SENTENCE)
    return {
        "still": make_clip(folder / "still.mp4", [Scene(6, 1)]),
        "cuts": make_clip(folder / "cuts.mp4", [Scene(1, 10 + i) for i in range(6)]),
        "speech": make_clip(folder / "speech.mp4", [Scene(round(spoken + 0.5), 2)],
                            speech=SENTENCE),
        "text": make_clip(folder / "text.mp4", [Scene(2, 20 + i, t) for i, t in
                                                enumerate(OVERLAYS)], width=640, height=360),
    }


@pytest.fixture(scope="module")
def backends():
    return load_backends(Settings())


def test_still_video_has_vden_near_zero_and_hard_cuts_score_high(clips, backends):
    still = measure_video(str(clips["still"]), Settings(), backends)
    cuts = measure_video(str(clips["cuts"]), Settings(), backends)
    assert still["frames"] == 12 and cuts["frames"] == 12
    assert still["vden"] < 1.0
    assert cuts["vden"] > 40.0
    assert len(cuts["frame_similarities"]) == len(cuts["frame_times"]) == 12


def test_spoken_english_sentence_gives_its_words_per_second(clips, backends):
    row = measure_video(str(clips["speech"]), Settings(), backends)
    expected = len(SENTENCE.split()) / row["duration"]
    assert row["aden"] == pytest.approx(expected, rel=0.2)
    spoken = " ".join(s["text"] for s in row["asr"]).lower()
    assert "summer" in spoken and "shipping" in spoken
    assert all(0 <= s["start"] < s["end"] <= row["duration"] + 0.5 for s in row["asr"])


def test_overlay_text_gives_oden_and_unchanged_frames_skip_ocr(clips, backends):
    row = measure_video(str(clips["text"]), Settings(), backends)
    # 6 + 7 + 2 units, each on screen for 2 s of a 6 s video (per-second policy).
    expected = (6 + 7 + 2) * 2 / 6
    assert row["oden"] == pytest.approx(expected, rel=0.2)
    read = [" ".join(r["texts"]).replace(" ", "") for r in row["ocr"]]
    assert "夏日清凉" in read[0] and "Buynow" in read[-1]
    assert row["ocr_calls"] == 3 and len(row["ocr"]) == 6   # one OCR call per new scene
    unique = measure_video(str(clips["text"]), replace(Settings(), ocr_count="unique"), backends)
    assert unique["ocr_units"] == pytest.approx((6 + 7 + 2), abs=2)


def test_oden_does_not_depend_on_the_source_frame_rate(tmp_path, backends):
    caption = [Scene(6, 3, "限时特价 99元")]   # 6 units on screen for the whole 6 s
    rows = {fps: measure_video(str(make_clip(tmp_path / f"{fps}fps.mp4", caption, fps=fps,
                                             width=640, height=360)), Settings(), backends)
            for fps in (25, 1)}
    for fps, row in rows.items():
        assert row["oden"] == pytest.approx(6.0, rel=0.05), fps
        assert sum(r["seconds"] for r in row["ocr"]) == pytest.approx(6.0)
    assert rows[25]["frames"] == 12 and rows[1]["frames"] == 6   # no frame is repeated
    assert any("source frame rate below --fps" in n for n in rows[1]["notes"])
    assert not any("frame rate" in n for n in rows[25]["notes"])


def test_long_video_is_cut_at_max_seconds_and_says_so(clips, backends):
    row = measure_video(str(clips["cuts"]), replace(Settings(), max_seconds=3), backends)
    assert row["frames"] == 6 and row["analysed_seconds"] == 3
    assert row["frame_times"][-1] < 3
    assert any("only the first 3 s" in note for note in row["notes"])


def test_tiny_random_dinov2_backend_runs_through_transformers(clips, tmp_path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = tmp_path / "tiny-dinov2"
    config = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          intermediate_size=64, image_size=56, patch_size=14)
    Dinov2Model(config).save_pretrained(folder)
    BitImageProcessor(size={"shortest_edge": 56}, crop_size={"height": 56, "width": 56},
                      image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                      do_convert_rgb=True).save_pretrained(folder)
    settings = replace(Settings(), visual_model=str(folder), asr="none", ocr="none")
    tiny = load_backends(settings)
    assert isinstance(tiny.visual, TransformersVision)
    still = analyse(VideoJob("still", str(clips["still"])), settings, tiny)
    cuts = analyse(VideoJob("cuts", str(clips["cuts"])), settings, tiny)
    assert still["backends"]["visual"] == f"transformers:{folder}"
    assert still["vden"] < 0.5 < cuts["vden"]   # random weights: only the ordering means much


def _broken_inputs(folder: Path, clips: dict[str, Path]) -> None:
    ffmpeg = shutil.which("ffmpeg")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(50_000))
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440",
                    "-t", "2", "-f", "wav", str(folder / "audio_only.mp4")], check=True)
    make_clip(folder / "odd.mp4", [Scene(1, 5), Scene(1, 6)], width=321, height=241)
    # Stored sideways, shown upright through the rotation metadata.
    sideways = folder.parent / "sideways.mp4"
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(clips["text"]), "-vf", "transpose=2",
                    "-c:v", "libx264", "-preset", "veryfast", str(sideways)], check=True)
    subprocess.run([ffmpeg, "-loglevel", "error", "-i", str(sideways), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(folder / "rotated.mp4")], check=True)


def test_bad_files_become_error_rows_and_the_run_goes_on(clips, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    _broken_inputs(folder, clips)
    shutil.copy(clips["still"], folder / "still.mp4")
    out = tmp_path / "out"
    assert main([str(folder), "--out", str(out)]) == EXIT_FAILED_VIDEOS
    assert "3 of 6 videos failed" in capsys.readouterr().err
    rows = {r["video_id"]: r for r in map(json.loads, (out / "per_video.jsonl").open())}
    assert "0 bytes" in rows["empty"]["error"]
    assert "corrupt.mp4 cannot be decoded" in rows["corrupt"]["error"]  # by the probe
    assert "no video stream" in rows["audio_only"]["error"]
    assert all(rows[v]["vden"] is None for v in ("empty", "corrupt", "audio_only"))
    assert rows["odd"]["video"]["size"] == [321, 241] and rows["odd"]["vden"] > 20
    assert "no audio stream: aden = 0" in rows["still"]["video"]["notes"]
    assert rows["still"]["aden"] == 0.0 and "error" not in rows["still"]
    rotated = rows["rotated"]["video"]
    assert any("rotation" in note for note in rotated["notes"])
    assert "夏日清凉" in "".join(rotated["ocr"][0]["texts"])   # read upright
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == 6 and summary["failed"] == 3
    assert set(summary["failures"]) == {"empty", "corrupt", "audio_only"}
    assert summary["vden"]["n"] == 3
    assert summary["backends"]["visual"] == OFFLINE_PIXELS


def test_decode_errors_name_the_file(tmp_path):
    from evads_density.decode import sample_frames

    with pytest.raises(DecodeError, match="not found"):
        sample_frames(tmp_path / "missing.mp4", 2, 10)
