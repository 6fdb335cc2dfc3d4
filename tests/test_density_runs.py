"""Whole runs: annotation mode, the sample in both modes, resume after a kill, workers, Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from paths import REPO, RL_PARQUET, needs_rl_parquet

from evads_density.analysis import Settings
from evads_density.cli import _settings, build_parser, main
from evads_density.features import resolve_visual_model
from evads_density.report import PAPER_REFERENCE
from evads_density.runner import pooled_rows
from evads_density.sources import VideoJob
from evads_density.synthetic import Scene, make_clip


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "per_video.jsonl").open(encoding="utf-8")]


@pytest.fixture(scope="module")
def four_clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("four")
    for number in range(4):
        make_clip(folder / f"clip_{number}.mp4",
                  [Scene(1, 40 + 3 * number + i, "新品" if i == 1 else "") for i in range(3)])
    return folder


@needs_rl_parquet
def test_annotation_mode_on_the_rl_split_reproduces_the_papers_speech_density(tmp_path):
    assert main([str(RL_PARQUET), "--out", str(tmp_path), "--source", "annotations"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["videos"] == 196 and summary["failed"] == 0
    assert summary["aden"]["mean"] == pytest.approx(PAPER_REFERENCE["E-VAds"][1], rel=0.1)
    # per-second screen text matches the paper's 18.66 far better than unique counting.
    assert summary["oden"]["mean"] == pytest.approx(PAPER_REFERENCE["E-VAds"][2], rel=0.1)
    assert summary["vden"]["n"] == 0 and "video" not in summary["sources"]
    assert summary["backends"]["annotations"] == "time-aligned OCR/ASR events"
    row = _rows(tmp_path)[0]
    assert row["vden"] is None and row["annotations"]["asr_units"] > 0


def test_sample_dataset_in_both_modes_agrees_with_its_annotations(sample_dir, tmp_path):
    out = tmp_path / "both"
    code = main([str(sample_dir / "annotations/test.parquet"), "--video-dir",
                 str(sample_dir / "videos"), "--out", str(out), "--workers", "2"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["videos"] == 8 and set(summary["sources"]) == {"video", "annotations"}
    video, notes = summary["sources"]["video"], summary["sources"]["annotations"]
    # English voiceover (the default Whisper base detects it) and the drawn overlays: both
    # sources should agree.
    assert video["aden"]["mean"] == pytest.approx(notes["aden"]["mean"], rel=0.25)
    assert video["oden"]["mean"] == pytest.approx(notes["oden"]["mean"], rel=0.25)
    script = json.loads((sample_dir / "script.json").read_text())
    silent = [v["video_id"] for v in script["videos"] if not v["has_audio"]]
    rows = {r["video_id"]: r for r in _rows(out)}
    assert len(silent) == 1 and rows[silent[0]]["aden"] == 0.0
    assert "no audio stream: aden = 0" in rows[silent[0]]["video"]["notes"]
    report = (out / "report.md").read_text()
    assert "| video | visual: offline-pixels (no learned weights)" in report
    assert "| annotations | time-aligned OCR/ASR events | 8 |" in report
    assert "| E-VAds | 60.44 | 5.08 | 18.66 |" in report
    assert (out / "density.png").stat().st_size > 20_000


def test_killed_run_resumes_without_duplicates(four_clips, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "evads_density", str(four_clips), "--out", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    process = subprocess.Popen(command, cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows_file = out / "per_video.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if rows_file.exists() and rows_file.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    first = rows_file.read_text().count("\n")
    assert 1 <= first < 4, "the run should be killed after its first row"
    with rows_file.open("a") as handle:
        handle.write('{"video_id": "clip_3", "vd')   # a torn last line, as from a kill
    finished = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"resuming: {first} of 4 videos" in finished.stdout
    ids = [row["video_id"] for row in _rows(out)]
    assert sorted(ids) == [f"clip_{n}" for n in range(4)]


def test_resume_refuses_other_settings(four_clips, tmp_path, capsys):
    quiet = [str(four_clips), "--out", str(tmp_path), "--asr", "none", "--ocr", "none"]
    assert main(quiet) == 0
    # auto is saved as the backend it chose, so naming that backend resumes...
    saved = json.loads((tmp_path / "settings.json").read_text())
    assert saved["visual_model"] == resolve_visual_model("auto") != "auto"
    assert main(quiet + ["--visual-model", saved["visual_model"]]) == 0
    assert "resuming: 4 of 4 videos" in capsys.readouterr().out
    # ...and options of a disabled part change nothing, while another backend is refused.
    assert main(quiet + ["--asr-language", "zh", "--ocr-fps", "3"]) == 0
    assert main(quiet + ["--visual-model", "some/other-model"]) == 2
    assert (f"other settings: visual_model {saved['visual_model']!r} -> 'some/other-model';"
            in capsys.readouterr().err)
    assert main(quiet + ["--alpha", "50"]) == 2
    assert "other settings: vden.alpha 100.0 -> 50.0;" in capsys.readouterr().err
    assert main(quiet + ["--alpha", "50", "--fresh"]) == 0
    assert len(_rows(tmp_path)) == 4


def test_annotation_only_resume_ignores_video_options(sample_dir, tmp_path, capsys):
    notes = [str(sample_dir / "annotations/test.parquet"), "--out", str(tmp_path),
             "--source", "annotations"]
    assert main(notes) == 0
    assert main(notes + ["--asr", "none", "--alpha", "3", "--visual-model", "x"]) == 0
    assert "resuming: 8 of 8 videos" in capsys.readouterr().out
    assert main(notes + ["--ocr-count", "unique"]) == 2
    assert "other settings: ocr_count 'per-second' -> 'unique'" in capsys.readouterr().err


def analyse_or_die(job: VideoJob) -> dict:
    """Stands in for the analysis in a pool worker: the job named "crash" kills its process."""
    if job.video_id == "crash":
        os._exit(7)
    time.sleep(0.2)   # long enough for the crash to catch other jobs in flight
    return {"video_id": job.video_id, "pid": os.getpid()}


def test_a_dying_worker_costs_one_error_row_and_the_run_goes_on():
    ids = ["a", "b", "crash", "c", "d", "e"]
    pools = []

    def start_pool():
        pools.append(ProcessPoolExecutor(2, mp_context=get_context("spawn")))
        return pools[-1]

    rows = list(pooled_rows([VideoJob(v) for v in ids], Settings(), 2, start_pool,
                            analyse_or_die))
    by_id = {row["video_id"]: row for row in rows}
    assert sorted(by_id) == sorted(ids) and len(rows) == len(ids)
    assert "worker process died" in by_id["crash"]["error"]
    assert by_id["crash"]["vden"] is None
    # The job in flight beside the crash was retried alone and succeeded.
    assert all("error" not in by_id[v] for v in ids if v != "crash")
    assert len(pools) >= 2   # the pool was restarted


def test_videos_with_the_same_id_are_refused_naming_both(four_clips, tmp_path, capsys):
    folder = tmp_path / "dupes"
    folder.mkdir()
    (folder / "ad.mp4").symlink_to(four_clips / "clip_0.mp4")
    (folder / "ad.mov").symlink_to(four_clips / "clip_1.mp4")
    assert main([str(folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "two videos share the id 'ad'" in err and "ad.mov" in err and "ad.mp4" in err


@pytest.mark.parametrize("option, value", [
    ("--ocr-fps", "0"), ("--max-seconds", "-5"), ("--max-seconds", "0"), ("--max-side", "0"),
    ("--workers", "0"), ("--fps", "0"), ("--window", "0"), ("--alpha", "-1"),
    ("--ocr-change-threshold", "1.5"), ("--workers", "two")])
def test_out_of_range_options_are_argparse_errors(option, value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--out", str(tmp_path / "o"), option, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and value in err


def test_cli_defaults_are_the_settings_defaults(tmp_path):
    args = build_parser().parse_args([str(tmp_path), "--out", str(tmp_path)])
    assert _settings(args, "video") == Settings().resolved()


def test_ray_backend_on_two_videos(four_clips, tmp_path):
    import ray

    folder = tmp_path / "two"
    folder.mkdir()
    for name in ("clip_0.mp4", "clip_1.mp4"):
        (folder / name).symlink_to(four_clips / name)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert main([str(folder), "--out", str(tmp_path / "out"), "--backend", "ray",
                     "--workers", "2"]) == 0
    finally:
        ray.shutdown()
    rows = _rows(tmp_path / "out")
    assert sorted(r["video_id"] for r in rows) == ["clip_0", "clip_1"]
    assert all(r["vden"] > 20 and r["video"]["ocr_calls"] >= 2 for r in rows)


def test_bad_input_paths_give_clear_errors(tmp_path, capsys):
    assert main([str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no video files" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o")]) == 2
    assert "file not found" in capsys.readouterr().err
