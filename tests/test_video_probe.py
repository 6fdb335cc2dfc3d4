"""The video probe on real files: good, empty, random bytes, truncated, audio-only, missing;
the disk cache keyed by path + size + mtime; the stop and skip decisions."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from evads_tasks.core.video_probe import (
    BAD_VIDEOS_ENV,
    BadVideosError,
    bad_video_mode,
    check_videos,
    probe_video,
    probe_videos,
)


@pytest.fixture(scope="module")
def videos(sample_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("probe")
    good = shutil.copy(sample_dir / "videos" / "ad_01.mp4", folder / "good.mp4")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "random.mp4").write_bytes(os.urandom(4096))
    data = Path(good).read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 3])
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1", str(folder / "audio_only.mp4")], check=True)
    return {path.stem: path for path in folder.iterdir()} | {"missing": folder / "missing.mp4"}


def test_each_kind_of_bad_file_has_its_reason(videos: dict[str, Path]) -> None:
    good = probe_video(videos["good"])
    assert good.ok and good.reason is None and 9 < good.duration < 17
    reasons = {name: probe_video(videos[name]).reason for name in
               ("empty", "random", "audio_only", "missing")}
    assert reasons == {"empty": "empty file (0 bytes)",
                       "random": "InvalidDataError: [Errno 1094995529] Invalid data found "
                                 "when processing input",
                       "audio_only": "no video stream", "missing": "file not found"}
    truncated = probe_video(videos["truncated"])
    assert not truncated.ok and truncated.reason


def test_the_cache_is_keyed_by_path_size_and_mtime(videos: dict[str, Path],
                                                   tmp_path: Path) -> None:
    good = shutil.copy(videos["good"], tmp_path / "clip.mp4")
    cache = tmp_path / "cache"
    assert probe_videos([good], cache_dir=cache)[Path(good)].ok
    # Same size and mtime, unreadable content: the cached verdict stands (no new probe) ...
    stat = os.stat(good)
    Path(good).write_bytes(b"\0" * stat.st_size)
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert probe_videos([good], cache_dir=cache)[Path(good)].ok
    # ... while a change of mtime probes again.
    os.utime(good, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert not probe_videos([good], cache_dir=cache)[Path(good)].ok
    assert (cache / "video_probe.sqlite3").is_file()


def test_links_to_one_file_probe_it_once_and_each_is_named_as_given(
        videos: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection of symlinks (a scaled split, a deduplicated store) probes each file
    once; a bad file behind two links stops the run naming both links."""
    import evads_tasks.core.video_probe as video_probe

    probed: list[Path] = []
    real_probe = video_probe.probe_video
    monkeypatch.setattr(video_probe, "probe_video",
                        lambda path: probed.append(Path(path)) or real_probe(path))
    links = {}
    for name, target in (("a", "good"), ("b", "good"), ("c", "truncated"), ("d", "truncated")):
        links[name] = tmp_path / f"{name}.mp4"
        links[name].symlink_to(videos[target])
    verdicts = probe_videos([*links.values(), videos["good"]], cache_dir=tmp_path / "cache")
    assert len(probed) == 2 and {p.resolve() for p in probed} == {
        videos["good"].resolve(), videos["truncated"].resolve()}
    assert {path: probe.ok for path, probe in verdicts.items()} == {
        links["a"]: True, links["b"]: True, links["c"]: False, links["d"]: False,
        videos["good"]: True}
    assert all(probe.path == str(path) for path, probe in verdicts.items())
    with pytest.raises(BadVideosError) as caught:
        check_videos({links["c"]: ["c1"], links["d"]: ["d1"]}, mode="stop",
                     cache_dir=tmp_path / "cache")
    assert [line.split(" cannot")[0] for line in str(caught.value).splitlines()[1:]] == [
        f"video file {links['c']}", f"video file {links['d']}"]
    assert len(probed) == 2  # the second look came from the cache


def test_stop_lists_every_bad_file_with_its_questions_and_ends_naming_one(
        videos: dict[str, Path], tmp_path: Path) -> None:
    wanted = {videos["good"]: ["g1", "g2"], videos["empty"]: ["e1", "e2", "e3"],
              videos["missing"]: ["m1"]}
    with pytest.raises(BadVideosError) as caught:
        check_videos(wanted, mode="stop", cache_dir=tmp_path)
    lines = str(caught.value).splitlines()
    assert lines[0].startswith("2 of 3 videos cannot be used, so nothing was run (set "
                               "EVADS_BAD_VIDEOS=skip to leave their 4 question(s) out")
    assert lines[1:] == [
        f"video file {videos['empty']} cannot be decoded: empty file (0 bytes) "
        "(questions e1, e2, e3)",
        f"video file {videos['missing']} not found (questions m1)"]


def test_skip_returns_the_bad_ones_and_warns(videos: dict[str, Path], tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    bad = check_videos({videos["good"]: ["g"], videos["random"]: ["r1", "r2"]}, mode="skip",
                       cache_dir=tmp_path)
    assert list(bad) == [videos["random"]]
    assert f"EVADS_BAD_VIDEOS=skip: leaving out video file {videos['random']}" in caplog.text


def test_the_mode_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BAD_VIDEOS_ENV, raising=False)
    assert bad_video_mode() == "stop"
    assert bad_video_mode({BAD_VIDEOS_ENV: " Skip "}) == "skip"
    with pytest.raises(ValueError, match="EVADS_BAD_VIDEOS must be one of"):
        bad_video_mode({BAD_VIDEOS_ENV: "ignore"})
