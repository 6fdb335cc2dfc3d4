"""Speed of the density analyzer with the default offline backends, on a generated 30 s ad.

Each stage is timed through the functions ``measure_video`` itself calls. Prints seconds of
analysis per second of video, the decode-only floor (decoding the same
sampled frames and nothing else) measured in the same run, and OCR calls against frames.
Targets: end to end >= 2x real time (30 s in <= 15 s), visual part (decode + features)
<= 3x the decode-only floor, and fewer OCR calls than OCR'd frames (unchanged frames
skip OCR). Model loading is timed apart: it happens once per worker, not per video.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from evads_density.analysis import Settings, load_backends, measure_video, read_screen_text
from evads_density.decode import decode_audio, probe, sample_frames
from evads_density.synthetic import Scene, make_clip

OVERLAYS = ("夏日清凉 冰丝T恤", "Cool Ice Silk", "透气速干 不闷汗", "限时特价 ¥59", "两件包邮",
            "点击下方链接", "MORE COLORS", "今天下单 明天到")
SPEECH = ("Hot summer days make you sweat. This ice silk shirt keeps you cool and dry all day. "
          "It breathes, it dries fast, and it never clings. Today it is only fifty nine yuan, "
          "and two pieces ship for free. Tap the link below and order now before it sells out.")


def generate_ad(path: Path, seconds: float = 30.0) -> Path:
    """Scenes of 2.5 s, each with an overlay line held for the whole scene, and a voiceover."""
    count = round(seconds / 2.5)
    scenes = [Scene(2.5, 100 + i, OVERLAYS[i % len(OVERLAYS)]) for i in range(count)]
    return make_clip(path, scenes, width=640, height=360, speech=SPEECH)


def timed(function, *args):
    began = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - began


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the generated ad")
    parser.add_argument("--repeat", type=int, default=2, help="runs; the fastest is reported")
    args = parser.parse_args(argv)
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        video = generate_ad(Path(tmp) / "ad.mp4", args.seconds)
        backends, load_s = timed(load_backends, settings)
        best: dict[str, float] = {}
        for _ in range(args.repeat):
            sampled, decode_s = timed(sample_frames, video, settings.vden.fps,
                                      settings.max_seconds, settings.max_side)
            _, feature_s = timed(backends.visual.embed, sampled.frames)
            audio, audio_s = timed(decode_audio, video, settings.max_seconds)
            _, asr_s = timed(backends.speech.transcribe, audio)
            seconds = min(probe(video).duration, settings.max_seconds)
            (ocr_rows, _), ocr_s = timed(read_screen_text, sampled, seconds, settings,
                                         backends.ocr)
            row, total_s = timed(measure_video, str(video), settings, backends)
            for key, value in (("decode", decode_s), ("features", feature_s),
                               ("audio", audio_s), ("asr", asr_s), ("ocr", ocr_s),
                               ("total", total_s)):
                best[key] = min(best.get(key, value), value)
    duration = row["duration"]
    visual = best["decode"] + best["features"]
    ocr_calls = sum(not r["reused"] for r in ocr_rows)
    used = ", ".join(v for k, v in backends.names("video").items() if k != "units")
    print(f"video: {duration:.1f} s, 640x360, {len(sampled.frames)} sampled frames at "
          f"{settings.vden.fps:g}/s; backends: {used}")
    print(f"model loading (once per worker): {load_s:.2f} s")
    for key in ("decode", "features", "audio", "asr", "ocr"):
        print(f"  {key:<9} {best[key]:6.2f} s  ({best[key] / duration:.3f} s per video second)")
    print(f"end to end: {best['total']:.2f} s = {best['total'] / duration:.3f} s per video second "
          f"({duration / best['total']:.1f}x real time)")
    print(f"decode-only floor: {best['decode']:.2f} s; visual part (decode + features) "
          f"{visual:.2f} s = {visual / best['decode']:.2f}x the floor")
    print(f"OCR calls: {ocr_calls} for {len(ocr_rows)} OCR'd frames "
          f"({len(sampled.frames)} sampled)")
    targets = {
        "end to end >= 2x real time": best["total"] <= duration / 2,
        "visual part <= 3x decode-only floor": visual <= 3 * best["decode"],
        "OCR skipped on unchanged frames (calls < OCR'd frames)": ocr_calls < len(ocr_rows),
    }
    for name, met in targets.items():
        print(f"target {'met  ' if met else 'UNMET'}: {name}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
