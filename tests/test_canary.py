"""The judge drift canary (evads_tasks.core.judge.canary) through ``python -m evads_tasks canary``
against loopback judge servers over HTTP: pinned with one judge, checked against the same
judge (passes), a judge answering one level lower (warns, exit 4) and a re-pointed alias
(passes, says so); a run's build step checks it once and records it."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from judge_server import JudgeServer, fake_judge_policy
from paths import REPO

from evads_tasks.core.judge.canary import CANARY_FILE, DRIFT, compare_to_pin, load_items
from evads_tasks.core.scoring import LEVELS

MODEL = "canary-judge"
ONE_LOWER = {"1.0": "0.75", "0.75": "0.5", "0.5": "0.25", "0.25": "0", "0": "0"}


def one_level_lower(messages):
    """The fake judge, then one level lower (0 stays 0): a judge that has changed."""
    head, level = fake_judge_policy(messages).rsplit("Answer: ", 1)
    return f"{head}Answer: {ONE_LOWER[level]}"


def _canary(server: JudgeServer, cache: Path, *args: str, **env: str):
    settings = {k: v for k, v in os.environ.items() if not k.startswith("EVADS_")}
    settings.update(EVADS_JUDGE_BASE_URL=server.url, EVADS_JUDGE_MODEL=MODEL,
                    EVADS_CACHE_DIR=str(cache), **env)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "evads_tasks", "canary", *args], cwd=REPO,
                          env=settings, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - start


def test_the_shipped_items_span_levels_languages_and_tasks():
    items = load_items()
    assert len(items) == 40 and len({item.id for item in items}) == 40
    assert Counter((i.language, i.level) for i in items) == {
        (language, level): 4 for language in ("en", "zh") for level in LEVELS}
    assert {i.task for i in items} == {"BP", "CM", "ML", "CI", "RC"}
    for item in items:
        request = item.request
        assert all(getattr(request, name).strip() for name in
                   ("question", "metadata", "clues", "reference", "answer")), item.id


def test_pin_then_check_the_same_a_lower_and_a_repointed_judge(tmp_path):
    cache = tmp_path / "cache"
    with JudgeServer(latency_s=0.02) as same:
        unpinned, _ = _canary(same, cache, "--check")
        assert unpinned.returncode == 2 and "no canary pinned for canary-judge" in (
            unpinned.stderr)
        assert same.calls == 0  # nothing judged without a pin

        pinned, pin_s = _canary(same, cache, "--pin")
        assert pinned.returncode == 0, pinned.stderr
        assert "pinned 40 canary verdicts" in pinned.stdout and "served as canary-judge" in (
            pinned.stdout)
        pin = json.loads((cache / CANARY_FILE).read_text(encoding="utf-8"))["pins"][
            f"{MODEL} | protocol evads"]
        assert len(pin["verdicts"]) == 40 and pin["served_models"] == {MODEL: 40}
        assert same.calls == 40

        passed, check_s = _canary(same, cache, "--check")
        assert passed.returncode == 0, passed.stderr
        assert "judge as pinned: 0 of 40 verdicts changed" in passed.stdout
        assert "exact 1.00, kappa 1.00" in passed.stdout
        assert same.calls == 80  # judged again: the cache was bypassed
        cost = re.search(r"\((\d+ call\(s\) in [\d.]+ s)\)$", passed.stdout.strip())
        assert cost is not None, passed.stdout
        print(f"canary --check at 20 ms a call: {cost.group(1)} judging, {check_s:.1f} s with "
              f"the process start (--pin {pin_s:.1f} s)")

    with JudgeServer(one_level_lower) as lower:
        drifted, _ = _canary(lower, cache, "--check")
    assert drifted.returncode == 4, drifted.stdout + drifted.stderr
    warning = drifted.stderr.strip().splitlines()[-1]
    assert warning.startswith("WARNING: judge drift: canary-judge | protocol evads")
    moved = sum(score > 0 for score in pin["verdicts"].values())
    assert f"{moved} of 40 verdicts changed (0 failed); exact {(40 - moved) / 40:.2f}" in warning
    assert "kappa" in warning
    with JudgeServer(one_level_lower) as lower:  # a wide tolerance lets it pass
        tolerated, _ = _canary(lower, cache, "--check", EVADS_CANARY_TOLERANCE="0.9")
        bad, _ = _canary(lower, cache, "--check", EVADS_CANARY_TOLERANCE="2")
    assert tolerated.returncode == 0, tolerated.stderr
    assert bad.returncode == 2 and "EVADS_CANARY_TOLERANCE must be a number" in bad.stderr

    with JudgeServer(served_model="canary-judge-2026-09") as repointed:
        renamed, _ = _canary(repointed, cache, "--check")
    assert renamed.returncode == 0, renamed.stderr
    assert "served as canary-judge-2026-09 now, as canary-judge when pinned" in renamed.stdout
    assert not (cache / "judge_cache.sqlite3").exists() or _verdicts(cache) == 0


def _verdicts(cache: Path) -> int:
    import sqlite3

    with sqlite3.connect(cache / "judge_cache.sqlite3") as db:
        return db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]


def test_a_failed_verdict_counts_as_changed():
    pinned = {"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.25}
    exact, kappa, changed, failed, drifted = compare_to_pin(
        pinned, {"a": 1.0, "b": 0.5, "c": 0.0, "d": None}, 0.1)
    assert (exact, kappa, changed, failed, drifted) == (0.75, 1.0, 1, 1, True)
    assert compare_to_pin(pinned, dict(pinned), 0.1)[4] is False


def test_a_run_checks_the_canary_once_and_records_it(tmp_path, monkeypatch, caplog):
    from evads_tasks.tasks import utils

    monkeypatch.setattr(utils, "_canaries", {})  # this process's "run" starts here
    monkeypatch.setattr(utils, "_judges", {})
    cache = tmp_path / "cache"
    with JudgeServer() as same:
        pinned, _ = _canary(same, cache, "--pin")
        assert pinned.returncode == 0, pinned.stderr
    for name in [n for n in os.environ if n.startswith("EVADS_")]:
        monkeypatch.delenv(name)
    with JudgeServer(one_level_lower) as lower, caplog.at_level(logging.WARNING):
        monkeypatch.setenv("EVADS_JUDGE_BASE_URL", lower.url)
        monkeypatch.setenv("EVADS_JUDGE_MODEL", MODEL)
        monkeypatch.setenv("EVADS_CACHE_DIR", str(cache))
        record = utils.judge_canary()
        again = utils.judge_canary()  # once per run: the five tasks' builds share it
        calls = lower.calls
        described = utils.run_description(utils.get_judge(), utils.judge_protocol())
    assert calls == 40 and again is record
    assert record["status"] == DRIFT and record["items"] == 40 and 0 < record["exact"] < 0.5
    assert any("judge drift" in r.getMessage() for r in caplog.records)
    assert described["canary"] == record

