"""Speed of the density analyzer with the default offline backends, on a generated 30 s ad.

The ad's voiceover is Mandarin, as in E-VAds: the ad lines of ``shared/data/speech`` one
after another (the English espeak-ng voiceover where that folder is absent; the run says
which). Each stage is timed through the functions ``measure_video`` itself calls. Prints
seconds of analysis per second of video, the decode-only floor (decoding the same sampled
frames and nothing else) measured in the same run, and OCR calls against frames. Then, side
by side in the same run, the real-time factor of the ASR alone and of the whole analysis
with the default ASR (Whisper base, multilingual, bundled) and with tiny.en (English only),
with the Aden each gives against the true one. Targets: whole analysis with the default ASR
>= 3x real time, visual part (decode + features) <= 3x the decode-only floor, and fewer OCR
calls than OCR'd frames (unchanged frames skip OCR). Model loading is timed apart: it
happens once per worker, not per video. ``--threads`` (2) is the CPU cores given to models.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from paths import SPEECH_DIR  # noqa: E402

from evads_density.analysis import (  # noqa: E402
    Settings,
    load_backends,
    measure_video,
    read_screen_text,
)
from evads_density.asr import TINY_EN, load_asr  # noqa: E402
from evads_density.decode import decode_audio, probe, sample_frames  # noqa: E402
from evads_density.synthetic import Scene, audio_track, make_clip  # noqa: E402
from evads_density.zh_text import count_cjk  # noqa: E402
from evads_tasks.core.text_units import count_units  # noqa: E402

OVERLAYS = ("夏日清凉 冰丝T恤", "Cool Ice Silk", "透气速干 不闷汗", "限时特价 ¥59", "两件包邮",
            "点击下方链接", "MORE COLORS", "今天下单 明天到")
SPEECH = ("Hot summer days make you sweat. This ice silk shirt keeps you cool and dry all day. "
          "It breathes, it dries fast, and it never clings. Today it is only fifty nine yuan, "
          "and two pieces ship for free. Tap the link below and order now before it sells out.")
PAUSE = 0.4   # seconds between two Mandarin lines
TARGET_REAL_TIME = 3.0


def mandarin_voiceover(folder: Path, seconds: float) -> tuple[Path, str, int] | None:
    """The shared Mandarin lines that fit in ``seconds``, with pauses: the track, what it
    is, and its CJK characters (the true speech units); None without the shared folder."""
    listing = SPEECH_DIR / "transcripts.jsonl"
    if not listing.is_file():
        return None
    parts, length, chars = [], 0.0, 0
    for line in listing.read_text(encoding="utf-8").splitlines():
        clip = json.loads(line)
        if length + clip["seconds"] > seconds:
            break
        parts += [SPEECH_DIR / clip["file"], PAUSE]
        length += clip["seconds"] + PAUSE
        chars += count_cjk(clip["text"])
    track = audio_track(parts, folder / "voiceover.wav")
    return track, f"Mandarin, {len(parts) // 2} lines of {SPEECH_DIR}", chars


def generate_ad(folder: Path, seconds: float = 30.0) -> tuple[Path, str, int]:
    """Scenes of 2.5 s, each with an overlay line held for the whole scene, and a voiceover;
    returns the video, what its voiceover is, and the true speech units."""
    count = round(seconds / 2.5)
    scenes = [Scene(2.5, 100 + i, OVERLAYS[i % len(OVERLAYS)]) for i in range(count)]
    mandarin = mandarin_voiceover(folder, seconds)
    if mandarin is None:
        video = make_clip(folder / "ad.mp4", scenes, width=640, height=360, speech=SPEECH)
        return video, f"English espeak-ng ({SPEECH_DIR} absent)", count_units(SPEECH)
    track, kind, units = mandarin
    return make_clip(folder / "ad.mp4", scenes, width=640, height=360, audio=track), kind, units


def timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the generated ad")
    parser.add_argument("--repeat", type=int, default=2, help="runs; the fastest is reported")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the models")
    args = parser.parse_args(argv)
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        video, voiceover, true_units = generate_ad(Path(tmp), args.seconds)
        backends, load_s = timed(load_backends, settings, args.threads)
        tiny, tiny_load_s = timed(load_asr, "faster-whisper", TINY_EN, "auto", "cpu",
                                  args.threads)
        asr_backends = {"default": backends, TINY_EN: replace(backends, speech=tiny)}
        best: dict[str, float] = {}
        rows: dict[str, dict] = {}
        for _ in range(args.repeat):
            sampled, decode_s = timed(sample_frames, video, settings.vden.fps,
                                      settings.max_seconds, settings.max_side)
            _, feature_s = timed(backends.visual.embed, sampled.frames)
            audio, audio_s = timed(decode_audio, video, settings.max_seconds)
            seconds = min(probe(video).duration, settings.max_seconds)
            (ocr_rows, _), ocr_s = timed(read_screen_text, sampled, seconds, settings,
                                         backends.ocr)
            stages = {"decode": decode_s, "features": feature_s, "audio": audio_s,
                      "ocr": ocr_s}
            for label, used in asr_backends.items():
                _, stages[f"asr {label}"] = timed(used.speech.transcribe, audio)
                rows[label], stages[f"total {label}"] = timed(measure_video, str(video),
                                                              settings, used)
            for key, value in stages.items():
                best[key] = min(best.get(key, value), value)
    duration = rows["default"]["duration"]
    visual = best["decode"] + best["features"]
    ocr_calls = sum(not r["reused"] for r in ocr_rows)
    print(f"video: {duration:.1f} s, 640x360, {len(sampled.frames)} sampled frames at "
          f"{settings.vden.fps:g}/s; voiceover: {voiceover}; {args.threads} CPU threads")
    print(f"model loading (once per worker): {load_s:.2f} s default backends, "
          f"{tiny_load_s:.2f} s tiny.en")
    for key in ("decode", "features", "audio", "asr default", "ocr"):
        print(f"  {key:<12} {best[key]:6.2f} s  ({best[key] / duration:.3f} s per video second)")
    print(f"decode-only floor: {best['decode']:.2f} s; visual part (decode + features) "
          f"{visual:.2f} s = {visual / best['decode']:.2f}x the floor")
    print(f"OCR calls: {ocr_calls} for {len(ocr_rows)} OCR'd frames "
          f"({len(sampled.frames)} sampled)")
    print(f"ASR side by side (true Aden {true_units / duration:.2f}):")
    print(f"  {'model':<46} {'ASR alone':>16} {'whole analysis':>17}  Aden")
    for label, used in asr_backends.items():
        asr, total = best[f"asr {label}"], best[f"total {label}"]
        spec = used.speech.spec
        name = f"{spec.name} ({spec.source}, {label})" if label == "default" else spec.name
        kind = "English only" if spec.english_only else "multilingual"
        print(f"  {name + ', ' + kind:<46} {asr:5.2f} s = {duration / asr:4.1f}x "
              f"{total:6.2f} s = {duration / total:4.1f}x  {rows[label]['aden']:.2f}")
    total = best["total default"]
    targets = {
        f"whole analysis, default ASR >= {TARGET_REAL_TIME:g}x real time":
            total <= duration / TARGET_REAL_TIME,
        "visual part <= 3x decode-only floor": visual <= 3 * best["decode"],
        "OCR skipped on unchanged frames (calls < OCR'd frames)": ocr_calls < len(ocr_rows),
    }
    for name, met in targets.items():
        print(f"target {'met  ' if met else 'UNMET'}: {name}")
    if total > duration / TARGET_REAL_TIME:
        parts = {k: best[k] for k in ("decode", "features", "audio", "asr default", "ocr")}
        top = max(parts, key=parts.get)
        print(f"  dominated by {top}: {parts[top]:.2f} s of {total:.2f} s")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
