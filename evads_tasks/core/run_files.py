"""The files an lmms-eval run writes, and whether they are whole.

lmms-eval only logs a warning when it cannot write its results or a sample log (a full
disk), and a sample log cut mid-way still parses up to the cut. Every reader of a finished
run (report, compare, rescore) and the run itself (at exit: ``tasks/outcome.py``) checks the
files the same way, so no mean is ever taken over part of a run.
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS_GLOB = "*_results.json"  # what lmms-eval's EvaluationTracker names a run's results


def read_results(path: Path) -> dict:
    """A run's results JSON; ValueError when it is not JSON or not an object."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc.msg})") from None
    if not isinstance(results, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return results


def run_file_problems(results_path: Path, samples: bool = True) -> list[str]:
    """What is wrong with the files of the run whose results JSON is ``results_path``: it
    must be whole JSON, with no ``.partial`` file left beside it, and (``samples``: the run
    logged them) each E-VAds task it counts samples of (``n-samples``) must have its sample
    log, one complete JSON line per sample. Empty when whole."""
    problems = []
    partial = results_path.with_name(results_path.name + ".partial")
    if partial.exists():
        problems.append(f"{partial} was left half-written")
    try:
        results = read_results(results_path)
    except (OSError, ValueError) as error:
        return [*problems, str(error)]
    date_id = results_path.name.removesuffix("_results.json")
    counts = results.get("n-samples") if isinstance(results.get("n-samples"), dict) else {}
    counts = counts if samples else {}
    for task, count in sorted(counts.items()):
        if not task.startswith("evads") or not isinstance(count, dict):
            continue
        want = count.get("effective", count.get("original"))
        log = results_path.with_name(f"{date_id}_samples_{task}.jsonl")
        have = _complete_lines(log)
        if have is None:
            problems.append(f"{log.name} is missing ({task}: {want} samples)")
        elif have != want:
            problems.append(f"{log.name} holds {have} complete sample(s) of {want} ({task})")
    return problems


def _complete_lines(path: Path) -> int | None:
    """Lines of ``path`` that are whole JSON (a cut last line is not); None when absent."""
    if not path.is_file():
        return None
    whole = 0
    with path.open("rb") as handle:
        for line in handle:
            try:
                whole += line.endswith(b"\n") and isinstance(json.loads(line), dict)
            except ValueError:
                continue
    return whole


def results_written_since(output_path: Path, since: float) -> list[Path]:
    """The results JSONs under ``output_path`` written at or after ``since`` (a Unix time)."""
    if not output_path.is_dir():
        return []
    return sorted(p for p in output_path.rglob(RESULTS_GLOB) if p.stat().st_mtime >= since)
