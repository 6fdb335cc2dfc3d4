"""``python -m evads_tasks rescore RUN --out NEW_DIR``: judge a finished run's predictions again.

Why: a model's run on the test split is GPU hours, the judge a paid API whose alias moves.
A rescore reads the predictions a run logged (lmms-eval ``--log_samples``: each sample keeps
the model's response and, in its judge record, the judge's inputs; see
``tasks.utils.judge_doc``) or the authors' ``final_results.csv``, judges every one with the
judge configured now (either protocol), through the same judge cache (an unchanged judge
makes no call), and writes a results JSON, sample logs and the report in the layout of an
lmms-eval run, so ``report`` and ``compare`` read it as any run. No model is loaded. As a
run does, it first checks the judge against its pinned canary (``core.judge.canary``).

Resume: each verdict is appended to ``rescore_progress.jsonl`` in the output folder as it
comes (the first line names the source, judge and protocol); a killed rescore started again
judges only what is missing, and again what the judge failed on. The same folder with
another source, judge or protocol is refused unless ``--fresh``.

Runs logged before evads kept the judge's inputs in the samples can be rescored with
``--annotations FILE`` (the run's ``EVADS_ANNOTATIONS``): the inputs are then taken from the
dataset by question id.

Generate on GPUs, judge anywhere: an lmms-eval ``--predict_only --log_samples`` run calls no
judge, and lmms-eval logs its samples without any E-VAds record (only the doc's place in the
task, the reference answer, the prompt and the response). Its rescore takes the questions
from the run's dataset (``--annotations``, default ``$EVADS_ANNOTATIONS``): the sample at
place N of task T is the N-th question of T, as the task built its docs, checked against the
logged reference answer and prompt (a question whose video was left out moves the places, so
a mismatch is looked up by answer and question instead, and an ambiguous one is an error).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from evads_tasks.core.annotations import (
    ANNOTATIONS_ENV,
    TASK_CODES,
    TASKS,
    canonical_category,
    load_annotations,
)
from evads_tasks.core.judge import HttpJudge, Judge, JudgeRequest
from evads_tasks.core.judge.accounting import (
    Price,
    format_tokens,
    merge_totals,
    priced,
    served_model_warning,
    usage_totals,
)
from evads_tasks.core.judge.config import judge_concurrency
from evads_tasks.core.judge.error_rate import error_rate_failure, max_judge_error_rate
from evads_tasks.core.judge.protocols import JudgeProtocol
from evads_tasks.core.run_files import read_results
from evads_tasks.tasks.ablation import FULL, Condition, condition
from evads_tasks.tasks.conditions import GROUPS, condition_of_task, group_of, task_of
from evads_tasks.tasks.metrics import (
    EXCLUDED_KEY,
    EXCLUDED_METRIC,
    INTERVAL_METRICS,
    JUDGE_METRIC,
    RUN_METRIC,
    USAGE_METRIC,
    VERDICT_LINE_METRIC,
    count_excluded,
    interval_cells,
    run_settings,
    same_over_tasks,
    task_name,
)

from .scored_runs import (
    AUTHORS_OUTPUT,
    RUN_FACTS_KEY,
    authors_rows,
    find_run,
    log_condition,
    logged_samples,
    logged_task,
    model_info,
    refuse_duplicates,
    scored_samples,
)

PROGRESS_FILE = "rescore_progress.jsonl"
NO_MODEL = "no model is loaded: the logged predictions are judged again"
# The values process_results returns: replaced in a rescored sample, the rest is kept.
_METRIC_KEYS = (*INTERVAL_METRICS, JUDGE_METRIC, EXCLUDED_METRIC, RUN_METRIC,
                USAGE_METRIC, VERDICT_LINE_METRIC)
# The columns of the authors' final_results rows a rescore needs.
AUTHORS_INPUTS = ("ques_id", "ques_categories", "question", "answer", "prediction",
                  "evidence", "asr_ocr_meta")
INPUT_KEYS = ("question", "metadata", "clues", "reference")


@dataclass(frozen=True)
class Prediction:
    """One logged prediction: the doc fields the judge needs (as ``process_docs`` builds
    them), the model's response, its task and the logged sample it came from."""

    doc: dict
    response: str
    task: str
    logged: dict


@dataclass(frozen=True)
class Source:
    """A finished run's predictions and what it says about how they were made."""

    path: Path
    kind: str
    predictions: list[Prediction]
    results: dict
    prompt: str | None
    model: str
    random_model: bool | None
    root: Path | None = None  # the run folder given (None for the authors' file)
    condition: Condition = FULL  # the modality condition the run's tasks ran under


# ---- reading a finished run ----------------------------------------------------------

def read_source(source: str | Path, annotations: str | None = None) -> Source:
    """An lmms-eval run folder (or a rescore's), or the authors' ``final_results.csv`` /
    ``.json``; ValueError / FileNotFoundError naming what is wrong."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        return _authors_source(path)
    return _run_source(path, annotations)


def _text(value: object) -> str:
    return "" if value is None or value != value else str(value)  # None, NaN -> ""


def _authors_source(path: Path) -> Source:
    predictions = []
    for number, (row, code, _) in enumerate(authors_rows(path, AUTHORS_INPUTS, "a rescore")):
        doc = {"question_id": _text(row["ques_id"]), "video_id": _text(row.get("video_id")),
               "task": code,
               "category": canonical_category(_text(row.get("goods_category"))) or "unknown",
               "question": _text(row["question"]), "metadata": _text(row["asr_ocr_meta"]),
               "clues": _text(row["evidence"]), "answer": _text(row["answer"]),
               EXCLUDED_KEY: 0}
        prediction = _text(row["prediction"])
        predictions.append(Prediction(doc, prediction, task_name(code), {
            "doc_id": number, "target": doc["answer"], "filtered_resps": prediction,
            "input": _text(row.get("asr_input"))}))
    return Source(path, AUTHORS_OUTPUT, predictions, {}, None,
                  "as the authors' script ran it (not recorded in its output)", None)


def _run_source(path: Path, annotations: str | None) -> Source:
    results_path, sample_paths = find_run(path)
    results = read_results(results_path)
    predictions, prompts, lacking, places, predicted_only = [], set(), [], [], {}
    conditions = list(dict.fromkeys(log_condition(p) for p in sample_paths))
    if len(conditions) > 1:
        raise ValueError(f"{results_path} holds the tasks of {len(conditions)} modality "
                         f"conditions ({', '.join(conditions)}): rescore one condition's run "
                         "at a time (give each condition its own lmms-eval --output_path)")
    for sample_path in sample_paths:
        name = logged_task(sample_path)
        for logged, where in logged_samples(sample_path):
            if _predicted_only(logged):
                predicted_only.setdefault(name, []).append((logged, where))
                continue
            prediction = _logged_prediction(logged, name, where)
            predictions.append(prediction)
            places.append((prediction.doc["question_id"], where))
            prompts.add((prediction.logged.get(RUN_METRIC) or {}).get("prompt"))
            if "question" not in prediction.doc:
                lacking.append(prediction)
    if predicted_only:
        predictions += _from_predictions(predicted_only, annotations, results_path)
    if not predictions:
        raise ValueError(f"the sample logs beside {results_path} are empty")
    refuse_duplicates(places)
    if lacking:
        predictions = _with_annotations(predictions, annotations, results_path)
    facts = results.get(RUN_FACTS_KEY) if isinstance(results.get(RUN_FACTS_KEY), dict) else {}
    model, random_model = model_info(results.get("config") or {}, results_path.parent)
    prompts.discard(None)
    return Source(results_path, "lmms-eval run" if "rescore" not in facts else "rescore",
                  predictions, results, ", ".join(sorted(prompts)) or None,
                  facts.get("model", model), facts.get("random_model", random_model), path,
                  condition(conditions[0]))


def _logged_prediction(logged: object, name: str, where: str) -> Prediction:
    record = logged.get(JUDGE_METRIC) if isinstance(logged, dict) else None
    if not isinstance(record, dict) or "question_id" not in record or "task" not in record:
        raise ValueError(f"{where}: no E-VAds judge record ('{JUDGE_METRIC}' with question_id "
                         "and task): not a sample of the E-VAds tasks")
    if record["task"] not in TASKS:
        raise ValueError(f"{where}: unknown task {record['task']!r}")
    response = _response(logged, where)
    doc = {"question_id": str(record["question_id"]), "video_id": record.get("video_id", ""),
           "task": record["task"], "category": record.get("category") or "unknown",
           EXCLUDED_KEY: (logged.get(EXCLUDED_METRIC) or {}).get(EXCLUDED_KEY, 0)}
    inputs = record.get("inputs")
    if isinstance(inputs, dict) and all(isinstance(inputs.get(k), str) for k in INPUT_KEYS):
        doc.update(question=inputs["question"], metadata=inputs["metadata"],
                   clues=inputs["clues"], answer=inputs["reference"])
    return Prediction(doc, response, name, logged)


def _predicted_only(logged: object) -> bool:
    """A sample of an lmms-eval ``--predict_only`` run: no E-VAds record, lmms-eval's
    ``bypass`` placeholder instead."""
    return isinstance(logged, dict) and JUDGE_METRIC not in logged and "bypass" in logged


def _run_annotations(annotations: str | None, results_path: Path) -> str:
    source = annotations or os.environ.get(ANNOTATIONS_ENV)
    if not source:
        raise ValueError(f"{results_path} is a --predict_only run: its samples keep no "
                         "question ids, so the questions are taken from its dataset: pass "
                         f"--annotations FILE (the run's {ANNOTATIONS_ENV})")
    return source


def _from_predictions(samples: dict[str, list[tuple[dict, str]]], annotations: str | None,
                      results_path: Path) -> list[Prediction]:
    """The predictions of a ``--predict_only`` run, each with its question from the run's
    dataset (see the module docstring); ValueError naming the sample that matches none."""
    from evads_tasks.tasks.utils import task_record_docs

    source = _run_annotations(annotations, results_path)
    predictions = []
    for name, logged_list in samples.items():
        try:
            _, code = condition_of_task(name)
        except ValueError as error:
            raise ValueError(f"{logged_list[0][1]}: {error}") from None
        docs = task_record_docs(source, code)
        taken: set[int] = set()
        for logged, where in logged_list:
            index = _matching_doc(logged, docs, taken, where, source)
            taken.add(index)
            predictions.append(Prediction(dict(docs[index]), _response(logged, where), name,
                                          logged))
    return predictions


def _matching_doc(logged: dict, docs: list[dict], taken: set[int], where: str,
                  source: str) -> int:
    """The doc a predict-only sample answered: the one at its logged place when the logged
    reference and prompt agree, else the one untaken doc that does."""
    target, prompt = str(logged.get("target", "")), str(logged.get("input", ""))

    def fits(doc: dict) -> bool:
        return doc["answer"] == target and doc["question"] in prompt

    place = logged.get("doc_id")
    if isinstance(place, int) and 0 <= place < len(docs) and place not in taken \
            and fits(docs[place]):
        return place
    found = [i for i, doc in enumerate(docs) if i not in taken and fits(doc)]
    if len(found) != 1:
        why = "no question" if not found else f"{len(found)} questions"
        raise ValueError(f"{where}: {why} of {source} match(es) this sample's reference "
                         f"answer and prompt (doc_id {place}): pass the run's "
                         f"{ANNOTATIONS_ENV} as --annotations")
    return found[0]


def _response(logged: dict, where: str) -> str:
    response = logged.get("filtered_resps")
    if isinstance(response, list):
        response = response[0] if response else ""
    if not isinstance(response, str):
        raise ValueError(f"{where}: no model response (filtered_resps) to judge")
    return response


def _with_annotations(predictions: list[Prediction], annotations: str | None,
                      results_path: Path) -> list[Prediction]:
    """Fill the judge's inputs of samples logged without them from the run's annotations."""
    if not annotations:
        raise ValueError(f"the samples beside {results_path} do not keep the judge's inputs "
                         "(logged before evads recorded them): pass --annotations FILE, the "
                         "run's EVADS_ANNOTATIONS, to take them from the dataset")
    records = {r.question_id: r for r in load_annotations(annotations)}
    filled = []
    for prediction in predictions:
        if "question" not in prediction.doc:
            record = records.get(prediction.doc["question_id"])
            if record is None:
                raise ValueError(f"question {prediction.doc['question_id']} of "
                                 f"{results_path} is not in {annotations}")
            prediction.doc.update(question=record.question, metadata=record.metadata_text(),
                                  clues=record.clues, answer=record.answer)
        filled.append(prediction)
    return filled


# ---- judging ------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """What a rescore would do, before any call (``--dry-run``)."""

    predictions: int
    done: int             # already in this folder's progress file
    by_rule: int          # empty answers scored 0 without a call
    cached: int           # in the judge cache: no call
    calls: int            # at least one call each
    prompt_tokens: int    # estimated, for the calls
    completion_tokens: int
    first_call: JudgeRequest | None = None  # what the timing preflight judges


def plan(source: Source, judge: Judge, protocol: JudgeProtocol,
         done: Sequence[str] = ()) -> Plan:
    """Count the calls left and estimate their tokens (one per CJK character plus one per
    four other characters of the real judge messages, a typical reply's completion)."""
    from evads_tasks.core.tokens import JUDGE_REPLY_TOKENS, message_tokens
    from evads_tasks.tasks.utils import judge_request

    finished = set(done)
    by_rule = cached = calls = prompt_tokens = 0
    first_call = None
    llm = isinstance(judge, HttpJudge)
    for prediction in source.predictions:
        if prediction.doc["question_id"] in finished:
            continue
        request = judge_request(protocol, prediction.doc, prediction.response)
        if protocol.by_rule(request):
            by_rule += 1
        elif llm and not judge.calls_for(request):
            cached += 1
        elif llm:
            calls += 1
            prompt_tokens += message_tokens(protocol.messages(request))
            first_call = first_call or request
    return Plan(len(source.predictions), len(finished & {p.doc["question_id"]
                                                          for p in source.predictions}),
                by_rule, cached, calls, prompt_tokens, calls * JUDGE_REPLY_TOKENS, first_call)


def preflight(result: Plan, judge: Judge) -> list[str]:
    """The timing preflight (``core/chat/preflight.py``): the plan's first call, timed; its
    verdict is the run's. Empty for a judge that makes no call or nothing left to call."""
    from evads_tasks.core.chat.preflight import preflight_lines
    from evads_tasks.core.judge.config import TIMEOUT_ENV

    if not isinstance(judge, HttpJudge) or result.first_call is None:
        return []
    return preflight_lines(judge.name, judge.preflight(result.first_call), result.calls,
                           judge.concurrency, judge.timeout_s, TIMEOUT_ENV)


def format_plan(result: Plan, judge: Judge, price: Price | None) -> str:
    lines = [f"dry run ({NO_MODEL}; nothing is written but the timed call's verdict, to the "
             "judge cache):",
             f"  predictions       {result.predictions}",
             f"  already rescored  {result.done} (in {PROGRESS_FILE})",
             f"  scored by rule    {result.by_rule} (empty answers: 0 without a call)",
             f"  in the cache      {result.cached} (no call)",
             f"  judge calls       {result.calls} (at least: an unparseable reply is asked "
             f"again, a failed call retried)"]
    if not isinstance(judge, HttpJudge):
        lines.append(f"  judge             {judge.name}: no calls, no tokens")
    else:
        lines.append(f"  tokens (est.)     ~{result.prompt_tokens:,} prompt + "
                     f"~{result.completion_tokens:,} completion")
        if price is not None:
            cost = price.cost(result.prompt_tokens, result.completion_tokens)
            lines.append(f"  cost (est.)       ~{cost:.4f} at {price.input_per_1m:g} / "
                         f"{price.output_per_1m:g} per 1M tokens")
    return "\n".join(lines)


def progress_header(source: Source, judge: Judge, protocol: JudgeProtocol) -> dict:
    """What a progress file was made with: a rescore resumes only the same three (as JSON
    reads them back, so that it compares equal)."""
    script = protocol.script
    return json.loads(json.dumps({
        "source": str(source.path.resolve()), "judge": judge.name, "protocol": protocol.name,
        "call": protocol.cache_params(),
        "official_script_sha256": script.sha256 if script is not None else None}))


def progress_started(path: Path) -> bool:
    """Whether a progress file holds a whole header line (a write cut on a full disk may
    have left it empty or cut: then nothing was judged yet, and it is started anew)."""
    if not path.exists():
        return False
    with path.open(encoding="utf-8", errors="replace") as handle:
        first = handle.readline()
    try:
        return first.endswith("\n") and "header" in json.loads(first)
    except ValueError:
        return False


class Progress:
    """The output folder's progress file: a header line, then one line per verdict."""

    def __init__(self, out: Path, header: dict, fresh: bool = False) -> None:
        self.path = out / PROGRESS_FILE
        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if progress_started(self.path) and not fresh:
            self._read(header)
        else:
            out.mkdir(parents=True, exist_ok=True)
            # the outputs' lmms-eval date id, kept so a resumed rescore rewrites its files
            self.date_id = time.strftime("%Y%m%d_%H%M%S")
            self.path.write_text(json.dumps({"header": header, "date_id": self.date_id})
                                 + "\n", encoding="utf-8")

    def _read(self, header: dict) -> None:
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # a kill cut the last line: start a new one
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\n")
        lines = text.splitlines()
        first = json.loads(lines[0]) if lines else {}
        old = first.get("header")
        self.date_id = first.get("date_id") or time.strftime("%Y%m%d_%H%M%S")
        if old != header:
            changed = [f"{key} {json.dumps((old or {}).get(key))} -> {json.dumps(header[key])}"
                       for key in header if (old or {}).get(key) != header[key]]
            raise ValueError(f"{self.path.parent} holds a rescore of another source, judge or "
                             f"protocol ({'; '.join(changed)}): pass --fresh to start over "
                             "there, or another --out")
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:  # the line a kill cut short
                continue
            self.entries[entry["question_id"]] = entry

    def done(self) -> list[str]:
        """Question ids judged already (a judge failure is judged again)."""
        return [qid for qid, entry in self.entries.items()
                if entry["values"][JUDGE_METRIC].get("error") is None]

    def add(self, question_id: str, judged: bool, values: dict) -> None:
        entry = {"question_id": question_id, "judged": judged, "values": values}
        with self._lock:
            self.entries[question_id] = entry
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
                handle.flush()


@dataclass(frozen=True)
class Outcome:
    results: Path
    report: Path
    predictions: int
    judged_now: int
    calls_now: int        # HTTP calls this invocation made
    wall_s: float
    usage: dict
    failure: str | None   # the error-rate failure line, when above the limit


def rescore(source: Source, out: Path, judge: Judge, protocol: JudgeProtocol, *,
            fresh: bool = False, progress: bool = True, price: Price | None = None,
            max_error_rate: float | None = None) -> Outcome:
    """Judge every prediction of ``source`` again and write the run layout into ``out``."""
    from evads_tasks.tasks.utils import judge_doc, run_description

    from .report import write_report

    started = time.monotonic()
    _check_out(source, out)
    state = Progress(out, progress_header(source, judge, protocol), fresh)
    finished = set(state.done())
    todo = [p for p in source.predictions if p.doc["question_id"] not in finished]
    run = {**run_description(judge, protocol), "prompt": source.prompt}
    concurrency = getattr(judge, "concurrency", None) or judge_concurrency()

    def one(prediction: Prediction) -> None:
        _, judged, values = judge_doc(judge, protocol, prediction.doc, prediction.response,
                                      run)
        state.add(prediction.doc["question_id"], judged, values)
        bar.update(1)

    with tqdm(total=len(todo), desc="rescore", unit="verdict",
              disable=not progress or not todo) as bar, \
            ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(todo) or 1))) as pool:
        list(pool.map(one, todo))
    entries = [state.entries[p.doc["question_id"]] for p in source.predictions]
    wall_s = time.monotonic() - started
    calls_now = sum(int(state.entries[p.doc["question_id"]]["values"].get(USAGE_METRIC, {})
                        .get("calls") or 0) for p in todo)
    usage = priced(usage_totals(e["values"][USAGE_METRIC] for e in entries
                                if USAGE_METRIC in e["values"]), price)
    facts = {"model": source.model, "random_model": source.random_model, "rescore": {
        "source": str(source.path), "source_kind": source.kind, "judge": judge.name,
        "judge_settings": judge.settings(), "protocol": protocol.name,
        "no_model_loaded": True, "predictions": len(entries), "judged_now": len(todo),
        "calls": usage["calls"], "calls_now": calls_now, "wall_s": round(wall_s, 3),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}}
    results = _write_run(source, out, entries, facts, price, state.date_id)
    report = write_report(out, since=None)
    judged = [e for e in entries if e["judged"]]
    errors = [e["values"][JUDGE_METRIC].get("error") for e in judged
              if e["values"][JUDGE_METRIC].get("error") is not None]
    failure = error_rate_failure(len(errors), len(judged), errors[0] if errors else None,
                                 max_judge_error_rate() if max_error_rate is None
                                 else max_error_rate)
    return Outcome(results, report, len(entries), len(todo), calls_now, wall_s, usage,
                   failure)


def _check_out(source: Source, out: Path) -> None:
    """The output folder must neither hold the source run (its results would be mixed) nor
    lie inside its folder (``report RUN`` would then read the rescore as the newest run)."""
    where = source.path.resolve().parent
    target = out.resolve()
    inside = source.root is not None and source.root.resolve() in target.parents
    if target == where or target in where.parents or inside:
        raise ValueError(f"--out {out} {'lies inside' if inside else 'holds'} the run being "
                         f"rescored ({source.root or source.path}): write the rescore to a "
                         "folder of its own")


def _write_run(source: Source, out: Path, entries: list[dict], facts: dict,
               price: Price | None, date_id: str) -> Path:
    """Sample logs and a results JSON named as lmms-eval names them (``DATE_samples_TASK.jsonl``,
    ``DATE_results.json``), the source's lmms-eval fields kept."""
    from .report import score_row, weighted_row

    logs: dict[Path, list[dict]] = {}
    for prediction, entry in zip(source.predictions, entries, strict=True):
        kept = {k: v for k, v in prediction.logged.items() if k not in _METRIC_KEYS}
        logs.setdefault(out / f"{date_id}_samples_{prediction.task}.jsonl", []).append(
            {**kept, **entry["values"]})
    for path, logged in logs.items():
        path.write_text("".join(json.dumps(sample, ensure_ascii=False) + "\n"
                                for sample in logged), encoding="utf-8")
    # scored as read_samples would read the logs back (the report reads them once, later)
    samples, _ = scored_samples(((sample, f"{path}, line {number}")
                                 for path, logged in logs.items()
                                 for number, sample in enumerate(logged, 1)),
                                source.condition.name)
    values: dict[str, list[dict]] = {}  # per task code, its samples' metric values
    for entry in entries:
        values.setdefault(entry["values"][JUDGE_METRIC]["task"], []).append(entry["values"])
    rows, usages, excluded, runs, by_task = {}, {}, {}, {}, {}
    for code in TASK_CODES:
        mine = [s for s in samples if s.task == code]
        if mine:
            by_task[code], rows[code] = mine, score_row(mine)
            usages[code] = usage_totals(s.usage for s in mine if s.usage is not None)
            # the aggregations the task YAML gives lmms-eval for these metrics
            excluded[code] = count_excluded([v[EXCLUDED_METRIC] for v in values[code]])
            runs[code] = run_settings([v[RUN_METRIC] for v in values[code]])
    source_rows = source.results.get("results") or {}
    results: dict = {}
    for code, row in rows.items():
        results[task_of(source.condition, code)] = {
            "alias": (source_rows.get(task_of(source.condition, code)) or {}).get("alias", code),
            **_metric_cells(row), "judge_errors,none": row["judge_errors"],
            f"{VERDICT_LINE_METRIC},none": row["verdict_lines"],
            "excluded_questions,none": excluded[code], "evads_run,none": runs[code],
            "judge_usage,none": priced(usages[code], price)}
    groups = {}
    for suffix, members in GROUPS.items():
        group = group_of(source.condition, suffix)
        present = [code for code in members if code in rows]
        if present and (group in source_rows or (not source_rows and
                                                  len(present) == len(members))):
            groups[group] = {
                "alias": (source_rows.get(group) or {}).get("alias", group),
                **_metric_cells(weighted_row([by_task[c] for c in present])),
                "judge_errors,none": sum(rows[c]["judge_errors"] for c in present),
                f"{VERDICT_LINE_METRIC},none": sum(rows[c]["verdict_lines"] for c in present),
                "excluded_questions,none": sum(excluded[c] for c in present),
                "evads_run,none": same_over_tasks([runs[c] for c in present], []),
                "judge_usage,none": priced(merge_totals([usages[c] for c in present]), price)}
    kept = {k: v for k, v in source.results.items()
            if k in ("group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
                     "n-samples", "config")}
    document = {**kept, "results": {**results, **groups}, "groups": groups, "date": date_id,
                RUN_FACTS_KEY: facts}
    document.setdefault("config", {"model": "the authors' script", "model_args": "",
                                   "limit": None})
    path = out / f"{date_id}_results.json"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    partial.replace(path)
    return path


def _metric_cells(row: dict) -> dict:
    """Each mean, its clustered standard error and 95% interval, as lmms-eval keys them."""
    cells = {}
    for name in INTERVAL_METRICS:
        cells[f"{name},none"] = row[name]
        cells.update(interval_cells(name, row["intervals"][name]))
    return cells


def summary_lines(outcome: Outcome, price: Price | None) -> list[str]:
    """What the command prints when it is done."""
    lines = [f"rescored {outcome.predictions} predictions ({NO_MODEL}); "
             f"{outcome.judged_now} judged now, {outcome.calls_now} judge call(s), in "
             f"{outcome.wall_s:.1f} s",
             f"judge, over every verdict: {format_tokens(outcome.usage, price)}",
             f"results: {outcome.results}", f"report: {outcome.report}"]
    if warning := served_model_warning(outcome.usage):
        lines.insert(1, f"WARNING: {warning}")
    return lines


def main(args) -> int:
    """The command (``python -m evads_tasks rescore``): 0; 1 when an output or the judge
    cache could not be written (a full disk: every verdict already in the progress file is
    kept, rerun to resume); 2 on a usage or input error; 3 when the judge failed on more
    answers than ``$EVADS_MAX_JUDGE_ERROR_RATE`` allows (the results are written all the
    same)."""
    import sys

    from evads_tasks.core.judge.accounting import judge_price
    from evads_tasks.core.judge.api import JudgeConfigError
    from evads_tasks.core.judge.canary import summary as canary_summary
    from evads_tasks.core.judge.config import apply_protocol_flag, judge_from_env, judge_protocol
    from evads_tasks.core.judge.error_rate import EXIT_JUDGE_ERRORS
    from evads_tasks.core.write_failure import EXIT_WRITE_FAILED, WriteFailed, writing
    from evads_tasks.tasks.utils import judge_canary

    apply_protocol_flag(args.protocol)
    try:
        price, protocol = judge_price(), judge_protocol()
        judge = judge_from_env()
    except JudgeConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        source = read_source(args.run, args.annotations)
        out = Path(args.out)
        print(f"rescore: {NO_MODEL} by {judge.name} (protocol {protocol.name}); "
              f"{len(source.predictions)} predictions from {source.path} ({source.kind})",
              file=sys.stderr)
        state = out / PROGRESS_FILE
        done = [] if args.fresh or not progress_started(state) else Progress(
            out, progress_header(source, judge, protocol)).done()
        planned = plan(source, judge, protocol, done)
        if args.dry_run:
            print(format_plan(planned, judge, price))
        else:
            try:  # as a run does: the judge checked against its pinned canary first
                canary = judge_canary()
            except JudgeConfigError as error:
                print(f"error: {error}", file=sys.stderr)
                return 2
            print(f"judge canary: {canary_summary(canary)}", file=sys.stderr)
        if not args.no_preflight and (timed := preflight(planned, judge)):
            print("\n".join(timed), file=sys.stdout if args.dry_run else sys.stderr)
        if args.dry_run:
            return 0
        try:
            with writing(out, f"every verdict already in {out / PROGRESS_FILE} is kept: free "
                              "space and rerun the same command to resume"):
                outcome = rescore(source, out, judge, protocol, fresh=args.fresh, price=price)
        except WriteFailed as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_WRITE_FAILED
    finally:
        problem = getattr(judge, "problem", None)
        close = getattr(judge, "close", None)
        if close is not None:
            close()
    print("\n".join(summary_lines(outcome, price)))
    failures = [line for line in (outcome.failure, problem) if line]
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    return EXIT_WRITE_FAILED if problem else EXIT_JUDGE_ERRORS if failures else 0
