"""What a user of ``python -m evads_density`` / ``make density`` sees: unavailable models and
devices refused before anything is written, one output folder per input, videos found
beside the annotations, and the Makefile target's usage and output folder."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from make_runner import run_make

from evads_density.cli import main
from evads_density.synthetic import Scene, make_clip
from evads_tasks.core.annotations import load_annotations, write_jsonl

QUIET = ["--asr", "none", "--ocr", "none"]   # the checks under test, without the slow models


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for number in range(3):
        make_clip(folder / f"clip_{number}.mp4", [Scene(1, 50 + 7 * number + i) for i in range(2)])
    return folder


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "per_video.jsonl").open(encoding="utf-8")]


def test_a_hub_model_that_is_not_cached_is_one_line_and_writes_nothing(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(clips), "--out", str(out), "--visual-model",
                 "evads-tests/no-such-vision-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "evads-tests/no-such-vision-model: the weights are not available locally" in err
    assert "HF_HUB_OFFLINE=0" in err and "local folder" in err
    assert not out.exists()


def test_a_folder_that_is_no_model_is_refused_naming_what_is_missing(clips, tmp_path, capsys):
    assert main([str(clips), "--out", str(tmp_path / "out"), "--visual-model", str(clips)]) == 2
    assert "not a saved transformers vision model (needs config.json" in capsys.readouterr().err
    assert main([str(clips), "--out", str(tmp_path / "out"), "--asr-model", str(clips)]) == 2
    assert "not a CTranslate2 Whisper folder (no model.bin)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_openai_whisper_without_a_model_is_an_argparse_error(clips, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(clips), "--out", str(tmp_path / "out"), "--asr", "openai-whisper"])
    assert exit_info.value.code == 2
    assert "--asr openai-whisper needs --asr-model" in capsys.readouterr().err


def test_openai_whisper_model_not_on_disk_is_refused_offline(clips, tmp_path, monkeypatch,
                                                             capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    assert main([str(clips), "--out", str(out), "--asr", "openai-whisper",
                 "--asr-model", "small"]) == 2
    err = capsys.readouterr().err
    assert "--asr-model small: the weights are not available locally" in err
    assert str(tmp_path / "empty-cache/whisper/small.pt") in err and not out.exists()
    assert main([str(clips), "--out", str(out), "--asr", "openai-whisper",
                 "--asr-model", "smal"]) == 2
    assert "neither a .pt file nor an openai-whisper model name" in capsys.readouterr().err


def test_a_gpu_that_is_not_there_is_refused(clips, tmp_path, capsys):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = f"cuda:{count}" if count else "cuda"
    for device, message in ((missing, f"argument --device: '{missing}'"),
                            ("gpu", "argument --device: must be cpu, cuda or cuda:N, got 'gpu'")):
        with pytest.raises(SystemExit) as exit_info:
            main([str(clips), "--out", str(tmp_path / "out"), "--device", device])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_another_input_in_the_same_out_is_refused_naming_both(clips, tmp_path, capsys):
    two = tmp_path / "two"
    two.mkdir()
    for name in ("clip_0.mp4", "clip_1.mp4"):
        (two / name).symlink_to(clips / name)
    out = tmp_path / "out"
    assert main([str(clips), "--out", str(out), *QUIET]) == 0
    recorded = json.loads((out / "settings.json").read_text())["input"]
    assert recorded == {"path": str(clips.resolve()), "split": None, "video_dir": None}
    capsys.readouterr()
    assert main([str(two), "--out", str(out), *QUIET]) == 2
    err = capsys.readouterr().err
    assert f"another input: path {str(clips.resolve())!r} -> {str(two.resolve())!r}" in err
    assert "--fresh" in err and len(_rows(out)) == 3
    assert main([str(two), "--out", str(out), *QUIET, "--fresh"]) == 0
    assert sorted(r["video_id"] for r in _rows(out)) == ["clip_0", "clip_1"]
    assert json.loads((out / "summary.json").read_text())["videos"] == 2


def test_an_unavailable_model_with_fresh_keeps_the_earlier_results(clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([str(clips), "--out", str(out), *QUIET]) == 0
    settings = (out / "settings.json").read_text()
    assert main([str(clips), "--out", str(out), *QUIET, "--fresh", "--visual-model",
                 "evads-tests/no-such-vision-model"]) == 2
    assert len(_rows(out)) == 3 and (out / "settings.json").read_text() == settings


@pytest.fixture
def two_video_annotations(sample_dir, tmp_path) -> Path:
    """An authors'-style tree: ``annotations/two.jsonl`` and ``videos/`` beside it."""
    records = load_annotations(sample_dir / "annotations/test.parquet")
    ids = sorted({r.video_id for r in records})[:2]
    (tmp_path / "annotations").mkdir()
    (tmp_path / "videos").mkdir()
    for record in records:
        if record.video_id in ids and not (tmp_path / "videos" / record.video_name).exists():
            (tmp_path / "videos" / record.video_name).symlink_to(
                sample_dir / "videos" / record.video_name)
    return write_jsonl([r for r in records if r.video_id in ids],
                       tmp_path / "annotations/two.jsonl")


def test_videos_beside_the_annotations_folder_are_used(two_video_annotations, tmp_path,
                                                       monkeypatch, capsys):
    monkeypatch.delenv("EVADS_VIDEO_DIR", raising=False)
    out = tmp_path / "out"
    assert main([str(two_video_annotations), "--out", str(out), *QUIET]) == 0
    stdout = capsys.readouterr().out
    videos = tmp_path / "videos"
    assert f"videos: {videos.resolve()}" in stdout and "2 videos (both)" in stdout
    rows = _rows(out)
    assert len(rows) == 2 and all(r["vden"] is not None and "error" not in r for r in rows)
    assert all(Path(r["video_path"]).parent == videos.resolve() for r in rows)
    # without the folder the same file is measured from its annotations alone
    shutil.rmtree(videos)
    assert main([str(two_video_annotations), "--out", str(tmp_path / "notes")]) == 0
    assert "2 videos (annotations)" in capsys.readouterr().out


def _make(*args: str) -> subprocess.CompletedProcess:
    # -o: take the venv as installed, so the test never reinstalls anything.
    return run_make("-o", "install", "-o", ".venv/.installed", "density", *args)


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_make_density_says_dataset_is_required_and_writes_under_out(tmp_path):
    usage = _make("DATASET=")
    assert usage.returncode == 2
    assert "DATASET is required" in usage.stdout and "DENSITY_FLAGS" in usage.stdout
    planned = _make("-n", "DATASET=d.parquet", f"OUT={tmp_path}")
    assert f'--out "{tmp_path}/density"' in planned.stdout
    named = _make("-n", "DATASET=d.parquet", f"DENSITY_OUT={tmp_path}/mine",
                  "DENSITY_FLAGS=--workers 2")
    assert f'--out "{tmp_path}/mine"' in named.stdout and "--workers 2" in named.stdout
