"""``python -m evads_generate VIDEOS_OR_ANNOTATIONS --out DIR --llm-base-url URL
--llm-model NAME``: an E-VAds-style benchmark from a folder of ad videos (or re-generated
from an annotation file), in any language, with any OpenAI-compatible LLM.

Before the run, one timed call (the first video's first proposal, whose reply the run
reuses) projects the run's wall time and warns when calls would pass the timeout; it also
settles the ``response_format`` mode the server accepts (``--dry-run`` shows it too, when
the server is named).

Exit status: 0 when the run finished (videos left partial or unusable are named in the
report), 1 when an output or the reply cache could not be written (a full or read-only disk:
the last line names the file; every finished video is kept, rerun to resume), 2 for a usage
or configuration error or a failure no retry mends (nothing is lost: rerun to resume), 3 when
some videos are left to retry (failed calls: rerun to finish them), 4 when more than
``--max-reply-error-rate`` of the role replies failed or no question came out of usable
videos (the counts by kind and the first error on the last line).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from evads_density.analysis import Settings as DensitySettings
from evads_density.analysis import check_backends
from evads_density.availability import BackendUnavailable
from evads_density.cli import HelpFormatter, checked_number
from evads_tasks.core.annotations import TASK_CODES, AnnotationError
from evads_tasks.core.chat.client import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_S,
    ChatClient,
)
from evads_tasks.core.chat.preflight import CallTiming, preflight_lines
from evads_tasks.core.judge import JudgeCache, JudgeConfigError, judge_from_env
from evads_tasks.core.judge.config import API_KEY_ENV as API_KEY_ENV_JUDGE
from evads_tasks.core.judge.config import (
    BASE_URL_ENV,
    CONCURRENCY_ENV,
    JUDGE_ENV,
    MAX_ATTEMPTS_ENV,
    MODEL_ENV,
    TIMEOUT_ENV,
)
from evads_tasks.core.video_probe import probe_videos
from evads_tasks.core.write_failure import EXIT_WRITE_FAILED, WriteFailed, writing

from .agents import propose
from .checks import Deduplicator
from .estimate import estimate, render, sized_metadata
from .exit_status import (
    DEFAULT_MAX_REPLY_ERROR_RATE,
    EXIT_FATAL,
    EXIT_REPLY_ERRORS,
    EXIT_RETRY,
    reply_failure,
)
from .inputs import VideoInput, collect_inputs
from .llm import CALL_FAILED, CONTEXT_LENGTH, LLM, FatalLLMError
from .output import kept, write_outputs
from .perception import Perceiver, from_record
from .pipeline import Generator
from .records import RETRY, VideoMeta
from .report import write_report
from .roles import ROLES
from .run import run_videos
from .settings import CHECK_MODES, RESPONSE_FORMATS, GeneratorSettings
from .state import CACHE, RESUME, RunFolder, SettingsMismatch

API_KEY_ENV = "EVADS_LLM_API_KEY"


def build_parser() -> argparse.ArgumentParser:
    d = GeneratorSettings()  # the one place the defaults live
    p = argparse.ArgumentParser(
        prog="python -m evads_generate",
        description="Generate E-VAds-style open-ended Q&A (5 per video: BP, CM, ML, CI, RC) "
                    "with five role agents, checked for grounding, answerability, blind "
                    "answerability and duplicates. Writes DIR/annotations.parquet (the test "
                    "schema: EVADS_ANNOTATIONS=DIR/annotations.parquet lmms_eval --tasks "
                    "evads), candidates.jsonl, report.md. Rerun the same command to resume.",
        formatter_class=HelpFormatter)
    p.add_argument("source", help="a folder of videos, one video, or an annotation file / hub "
                                  "id (its metadata is used as is)")
    p.add_argument("--out", required=True, type=Path, help="output folder (resumed if present)")
    p.add_argument("--llm-base-url", help="OpenAI-compatible base URL, e.g. "
                   "http://127.0.0.1:8000/v1 (vLLM); required unless --dry-run")
    p.add_argument("--llm-model", help="model name as the server knows it; required unless "
                                       "--dry-run")
    p.add_argument("--llm-api-key-env", default=API_KEY_ENV, metavar="VAR",
                   help="environment variable holding the API key (never a flag, never "
                        "written anywhere)")
    p.add_argument("--language", default=d.language,
                   help="language of the questions and answers: zh, en or any ISO code")
    p.add_argument("--video-dir", help="videos of an annotation file (default: "
                                       "$EVADS_VIDEO_DIR, else videos/ beside it)")
    p.add_argument("--split", help="which split's files to read from a hub dataset")
    p.add_argument("--limit", type=checked_number(int, 1, strict=False),
                   help="only the first N videos")
    p.add_argument("--dry-run", action="store_true",
                   help="print the expected calls, tokens (and cost with --price-*) and exit; "
                        "with --llm-base-url and --llm-model, also make the one timed call")
    price = checked_number(float, 0, strict=False)
    p.add_argument("--price-input", type=price, help="USD per million input tokens")
    p.add_argument("--price-output", type=price, help="USD per million output tokens")
    p.add_argument("--fresh", action="store_true",
                   help="start the folder over (the reply cache is kept)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    g = p.add_argument_group("perception (raw videos; the density analyzer's components)")
    g.add_argument("--asr-language", default=None,
                   help="speech language for ASR (default: --language; 'auto' detects it)")
    g.add_argument("--asr-model", default=None,
                   help="Whisper model (default: the bundled multilingual base; see "
                        "python -m evads_density --help)")
    g.add_argument("--visual-model", default="auto", help="for Vden in the report")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    g.add_argument("--frames", type=int, default=d.frames,
                   help="frames sent as images to the role agents (a VLM endpoint)")

    g = p.add_argument_group("generation and checks")
    g.add_argument("--candidates-per-task", type=int, default=d.candidates_per_task,
                   help="candidates each role proposes per task and round")
    g.add_argument("--rounds", type=int, default=d.rounds,
                   help="proposal rounds (later ones ask only for unfilled tasks)")
    g.add_argument("--check", choices=CHECK_MODES, default=d.check_mode,
                   help="lazy: LLM checks in preference order until a task is filled; "
                        "all: every grounded candidate")
    g.add_argument("--grounding-window", type=float, default=d.grounding_window_s,
                   help="seconds around its timestamp where a quote must appear")
    g.add_argument("--answerable-threshold", type=float, default=d.answerable_threshold,
                   help="judge score the metadata-only answer must reach")
    g.add_argument("--blind-threshold", type=float, default=d.blind_threshold,
                   help="reject when the answer without the video scores this or more")
    g.add_argument("--duplicate-threshold", type=float, default=d.duplicate_threshold,
                   help="combined similarity at which two questions are near-duplicates")
    g.add_argument("--max-answer-words", type=int, default=d.max_answer_units,
                   help="longest reference answer (a CJK character counts as a word)")
    g.add_argument("--temperature", type=float, default=d.propose_temperature,
                   help="temperature of the role agents (the checks use 0)")
    g.add_argument("--max-tokens", type=int, default=d.propose_max_tokens,
                   help="completion limit of a role agent's reply")
    g.add_argument("--response-format", choices=RESPONSE_FORMATS, default=d.response_format,
                   help="how role replies are asked for first: json_schema (the server "
                        "enforces the schema: vLLM, SGLang, llama.cpp, OpenAI); a server "
                        "that refuses it moves the run to json_object with the schema, then "
                        "to none (the schema in the prompt), once, remembered in the cache")
    g.add_argument("--max-reply-error-rate", type=checked_number(float, 0, strict=False),
                   default=DEFAULT_MAX_REPLY_ERROR_RATE,
                   help="exit 4 when more than this share of role replies failed")
    g.add_argument("--allow-partial", action="store_true",
                   help="also write videos with fewer than five accepted questions")

    g = p.add_argument_group("calls")
    g.add_argument("--concurrency", type=checked_number(int, 1, strict=False),
                   default=DEFAULT_CONCURRENCY,
                   help="LLM and judge calls in flight, in total")
    g.add_argument("--video-workers", type=checked_number(int, 1, strict=False),
                   help="videos generated for at once (default: --concurrency)")
    g.add_argument("--timeout", type=checked_number(float, 0), default=DEFAULT_TIMEOUT_S,
                   help="seconds per call")
    g.add_argument("--max-attempts", type=checked_number(int, 1, strict=False),
                   default=DEFAULT_MAX_ATTEMPTS,
                   help="tries per call")
    g.add_argument("--cache-dir", type=Path,
                   help="reply, verdict and probe cache (default: DIR/cache)")
    g.add_argument("--no-preflight", action="store_true",
                   help="skip the timed call before the run")
    return p


def _settings(args: argparse.Namespace) -> GeneratorSettings:
    return GeneratorSettings(
        language=args.language, asr_language=args.asr_language,
        grounding_window_s=args.grounding_window, answerable_threshold=args.answerable_threshold,
        blind_threshold=args.blind_threshold, duplicate_threshold=args.duplicate_threshold,
        max_answer_units=args.max_answer_words, candidates_per_task=args.candidates_per_task,
        rounds=args.rounds, check_mode=args.check, propose_temperature=args.temperature,
        propose_max_tokens=args.max_tokens, response_format=args.response_format,
        frames=args.frames, allow_partial=args.allow_partial)


def _density_settings(args: argparse.Namespace, settings: GeneratorSettings,
                      raw: bool) -> DensitySettings:
    if not raw:
        return DensitySettings(source="annotations")
    return DensitySettings(source="video", visual_model=args.visual_model,
                           asr_model=args.asr_model,
                           asr_language=settings.speech_language or "auto",
                           device=args.device).resolved()


def _judge(args: argparse.Namespace, api_key: str | None, cache_dir: Path):
    """The project's judge factory: the judge the EVADS_JUDGE* variables describe when they
    name one, else the generator's own LLM as the LLM judge (same protocol settings)."""
    env = dict(os.environ)
    if not env.get(JUDGE_ENV, "").strip() and not env.get(BASE_URL_ENV, "").strip():
        env.update({BASE_URL_ENV: args.llm_base_url, MODEL_ENV: args.llm_model,
                    CONCURRENCY_ENV: str(args.concurrency), TIMEOUT_ENV: str(args.timeout),
                    MAX_ATTEMPTS_ENV: str(args.max_attempts)})
        env.pop(API_KEY_ENV_JUDGE, None)
        if api_key:
            env[API_KEY_ENV_JUDGE] = api_key
    return judge_from_env(cache_dir=cache_dir, env=env)


def _known_metadata(args, items: list[VideoInput]) -> dict[str, VideoMeta]:
    """Each video's metadata known before perception: the annotations', or what an earlier
    run in the folder perceived."""
    known = {i.video_id: from_record(i.record, i.video_path) for i in items if not i.raw}
    perceived = RunFolder(args.out).perceived()  # none before a first run
    known.update({vid: meta for vid, meta in perceived.items() if not meta.error})
    return known


def _estimate(items: list[VideoInput], settings: GeneratorSettings,
              known: dict[str, VideoMeta], cache_dir: Path):
    """The run's plan; raw videos not perceived yet are probed for their duration into the
    run's probe cache, where perception finds the verdicts."""
    unknown = [i.video_path for i in items if i.raw and i.video_id not in known]
    probes = probe_videos(unknown, cache_dir=cache_dir) if unknown else {}
    durations = {i.video_id: probes[Path(i.video_path)].duration for i in items
                 if i.raw and Path(i.video_path or "") in probes}
    return estimate(items, {vid: meta.metadata for vid, meta in known.items()}, durations,
                    settings)


def _preflight(llm: LLM, args, items: list[VideoInput], settings: GeneratorSettings,
               known: dict[str, VideoMeta], calls: float) -> list[str]:
    """Time the first video's first proposal alone (its reply, cached, is the run's; a raw
    video not perceived yet stands in as metadata of a 30 s ad). This call also settles the
    ``response_format`` mode before the run's calls go out side by side."""
    first = next((known[i.video_id] for i in items if i.video_id in known
                  and not known[i.video_id].error), None)
    target = f"{llm.name} (a proposal for video {first.video_id})" if first else \
        f"{llm.name} (a proposal for a stand-in 30 s video)"
    if first is None:
        first = VideoMeta("preflight-stand-in", "annotations", None, None, 30.0, (),
                          sized_metadata(30.0))
    started = time.monotonic()
    proposed = propose(llm, ROLES[0], first, list(TASK_CODES), 1, settings, max_attempts=1)
    log = proposed.log
    if log["cached"]:
        return [f"preflight: no timed call: {target} is answered from the cache (a rerun)"]
    failed = log["error_kind"] in (CALL_FAILED, CONTEXT_LENGTH)
    invalid = f"{log['error_kind']}: {log['error']}" if log["error_kind"] else None
    timing = CallTiming(time.monotonic() - started, 1, log["prompt_tokens"] or None,
                        log["completion_tokens"] or None, log["error"] if failed else None,
                        None if failed else invalid)
    lines = preflight_lines(target, timing, round(calls), args.concurrency, args.timeout,
                            "--timeout")
    structured = llm.structured.describe()
    lines.append(f"  role replies will be asked for with {structured['how']}"
                 + (" (the server refused " + ", ".join(r["mode"] for r in
                                                        structured["refusals"]) + ")"
                    if structured["refusals"] else ""))
    return lines


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_FATAL


def _open_llm(args, settings: GeneratorSettings, cache_dir: Path) -> LLM:
    """The generator's client, judge and cache as one ``LLM``; ValueError or
    JudgeConfigError when the settings are wrong."""
    api_key = os.environ.get(args.llm_api_key_env) or None
    client = ChatClient(args.llm_base_url, args.llm_model, api_key,
                        concurrency=args.concurrency, timeout_s=args.timeout,
                        max_attempts=args.max_attempts)
    try:
        judge = _judge(args, api_key, cache_dir)
    except (ValueError, JudgeConfigError):
        client.close()
        raise
    return LLM(client, JudgeCache(cache_dir), judge, args.concurrency,
               settings.response_format)


def _close(llm: LLM) -> None:
    llm.client.close()
    llm.cache.close()
    if hasattr(llm.judge, "close"):
        llm.judge.close()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = _settings(args)
        items, kind = collect_inputs(args.source, args.video_dir, args.split)
    except (ValueError, AnnotationError) as error:
        return _fail(str(error))
    items = items[:args.limit] if args.limit else items
    named = bool(args.llm_base_url and args.llm_model)
    if not named and not args.dry_run:
        parser.error("--llm-base-url and --llm-model are required (or pass --dry-run)")
    cache_dir = args.cache_dir or args.out / CACHE
    known = _known_metadata(args, items)
    if args.dry_run:
        planned = _estimate(items, settings, known, cache_dir)
        print(render(planned, args.price_input, args.price_output, timed=named))
        if named:
            try:
                llm = _open_llm(args, settings, cache_dir)
            except (ValueError, JudgeConfigError) as error:
                return _fail(str(error))
            try:
                print("\n".join(_preflight(llm, args, items, settings, known, planned.calls)))
            except FatalLLMError as error:
                return _fail(str(error))
            finally:
                _close(llm)
        return 0
    raw = any(item.raw for item in items)
    try:
        density = _density_settings(args, settings, raw)
        if raw:
            check_backends(density)
        llm = _open_llm(args, settings, cache_dir)
    except (ValueError, BackendUnavailable, JudgeConfigError) as error:
        return _fail(str(error))
    client, judge = llm.client, llm.judge
    recorded = {"input": str(Path(args.source).expanduser().resolve())
                if Path(args.source).expanduser().exists() else args.source,
                "kind": kind, "limit": args.limit, "llm": client.name, "judge": judge.name,
                "generator": settings.to_dict(),
                "perception": density.affecting_numbers() if raw else None}
    folder = RunFolder(args.out)
    try:
        with writing(args.out, "nothing was generated yet: free space and rerun"):
            folder.start(recorded, args.fresh)
    except SettingsMismatch as error:
        _close(llm)
        return _fail(str(error))
    except WriteFailed as error:
        _close(llm)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    generator = Generator(llm, Deduplicator(settings.duplicate_threshold), settings)
    perceiver = Perceiver(density, cache_dir, settings.language) if raw else None
    status, resumed, problems = 0, 0, []
    try:
        todo = [i for i in items if i.video_id not in folder.finished()]
        if todo and not args.no_preflight:
            calls = _estimate(todo, settings, known, cache_dir).calls
            print("\n".join(_preflight(llm, args, todo, settings, known, calls)),
                  file=sys.stderr)
        outcome = run_videos(items, folder, generator, perceiver,
                             args.video_workers or args.concurrency, settings.frames,
                             progress=not args.no_progress)
        results, resumed = outcome.results, outcome.resumed
    except (FatalLLMError, WriteFailed) as error:
        if isinstance(error, WriteFailed):
            problems.append(str(error))
        else:
            status = _fail(f"{error} (nothing finished is lost: fix it and rerun to resume)")
        done = folder.results()
        results = [done[i.video_id] for i in items if i.video_id in done]
    finally:
        problems += [p for p in (llm.cache.problem, getattr(judge, "problem", None)) if p]
        _close(llm)
    notes = client.server_notes() + (judge.settings().get("server_notes") or [])
    try:
        with writing(args.out, RESUME):
            written = write_outputs(results, args.out, settings.allow_partial)
            run_info = {"input": recorded["input"], "kind": kind,
                        "language": settings.language, "llm": client.name,
                        "judge": judge.name, "questions": written["questions"],
                        "structured_output": llm.structured.describe(),
                        "server_notes": notes}
            summary = write_report(results, kept(results, settings.allow_partial), run_info,
                                   args.out, density)
    except WriteFailed as error:
        problems.append(str(error))
    if problems:
        for problem in dict.fromkeys(problems):
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_WRITE_FAILED
    retry = sum(r.status == RETRY for r in results)
    print(f"{written['questions']} questions for {written['videos']} videos -> "
          f"{args.out / 'annotations.parquet'}; report: {args.out / 'report.md'}"
          + (f" ({resumed} videos were finished by an earlier run)" if resumed else ""))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if retry:
        print(f"{retry} video(s) had failed calls: rerun the same command to finish them",
              file=sys.stderr)
    failure = None if status else reply_failure(summary, args.max_reply_error_rate)
    if failure is not None:
        print(f"error: {failure}", file=sys.stderr)
        return EXIT_REPLY_ERRORS
    return status or (EXIT_RETRY if retry else 0)
