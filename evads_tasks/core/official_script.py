"""The authors' evaluation script, read (never imported or run) from the user's copy.

The official protocol is whatever the authors' public script does, so evads does not carry
its wording: ``EVADS_OFFICIAL_EVAL`` names the user's copy of ``eval_qwen3vl_8b.py`` (or the
root of a checkout of the authors' repository), and this module parses it with :mod:`ast`
to take out what must be identical:

- ``JUDGE_PROMPT``: the module-level string the judge message is formatted from;
- the f-string assigned to ``input_question``: the model's text, as literal pieces and the
  test-schema columns its names were read from (``asr = sample['asr_input']``);
- the judge call ``client.chat.completions.create(...)``: its literal ``model``,
  ``max_tokens``, ``temperature``, ``seed`` and ``timeout``, and around it the number of tries
  (the ``max_retries`` default) and the pause between them (``time.sleep(N)``).

A copy without one of these is refused with an error naming what is missing and where the
script is published. The sha256 of the file goes into every result made with it.
"""

from __future__ import annotations

import ast
import hashlib
import os
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

OFFICIAL_EVAL_ENV = "EVADS_OFFICIAL_EVAL"
SCRIPT_IN_REPO = "evaluation/eval_qwen3vl_8b.py"
PUBLISHED_AT = ("https://github.com/Tennine2077/E-VAds_Benchmark/blob/main/"
                f"{SCRIPT_IN_REPO}")
# The sha256 of the script at upstream commit 7604ea0, the version evads was checked against.
CHECKED_SHA256 = "f0049108cfb5095eb4d50801a4da9596c38a65d1ea0e5275f00b742f114c99eb"

JUDGE_PROMPT_NAME = "JUDGE_PROMPT"
QUESTION_NAME = "input_question"
# The keyword arguments JUDGE_PROMPT.format(...) receives in the authors' script.
JUDGE_PROMPT_FIELDS = ("question", "metadata", "clues", "reference_answer", "model_output")
# The test-schema text columns a question template may read.
TEMPLATE_COLUMNS = ("question", "asr_input", "asr_ocr_meta", "evidence", "answer")
BODY_PARAMS = ("max_tokens", "temperature", "seed")
CALL_KEYWORDS = ("model", *BODY_PARAMS, "timeout")
RETRIES_ARG = "max_retries"


class OfficialScriptError(ValueError):
    """The official protocol cannot read its script; the message says what was expected."""


@dataclass(frozen=True)
class QuestionTemplate:
    """The f-string that builds the model's text: literal text and test-schema columns.

    ``parts`` holds ``("text", literal)`` and ``("column", name)`` in order.
    """

    parts: tuple[tuple[str, str], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(value for kind, value in self.parts if kind == "column"))

    def render(self, values: Mapping[str, str]) -> str:
        """The text the script builds for a row whose columns are ``values``."""
        return "".join(value if kind == "text" else format(values[value], "")
                       for kind, value in self.parts)


@dataclass(frozen=True)
class JudgeCall:
    """How the script calls its judge: model, JSON body parameters, timeout and tries."""

    model: str
    params: Mapping[str, object] = field(hash=False)
    timeout_s: float
    tries: int
    retry_delay_s: float


@dataclass(frozen=True)
class OfficialScript:
    path: Path
    sha256: str
    judge_prompt: str
    question_template: QuestionTemplate
    judge_call: JudgeCall


def _unusable(what: str) -> OfficialScriptError:
    return OfficialScriptError(
        f"{what}. The official protocol (EVADS_PROTOCOL=official) reads the authors' "
        f"evaluation script at run time: set {OFFICIAL_EVAL_ENV} to your copy of "
        f"eval_qwen3vl_8b.py or to the root of a checkout of the authors' repository "
        f"(the script is published at {PUBLISHED_AT}).")


def script_path(location: str | os.PathLike | None = None,
                env: Mapping[str, str] | None = None) -> Path:
    """The script file: ``location``, else ``$EVADS_OFFICIAL_EVAL``; a folder is a checkout
    of the authors' repository holding ``evaluation/eval_qwen3vl_8b.py``."""
    env = os.environ if env is None else env
    chosen = location or env.get(OFFICIAL_EVAL_ENV, "").strip()
    if not chosen:
        raise _unusable(f"{OFFICIAL_EVAL_ENV} is not set")
    path = Path(chosen).expanduser()
    if path.is_dir():
        inside = path / SCRIPT_IN_REPO
        if not inside.is_file():
            raise _unusable(f"{path} is a folder without {SCRIPT_IN_REPO}")
        return inside
    if not path.is_file():
        raise _unusable(f"{path} not found")
    return path


def load_official_script(location: str | os.PathLike | None = None,
                         env: Mapping[str, str] | None = None) -> OfficialScript:
    """The parsed script (cached while the file is unchanged); OfficialScriptError if the
    file is missing, is not Python, or lacks a name the protocol needs."""
    path = script_path(location, env).resolve()
    stat = path.stat()
    return _load(str(path), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int) -> OfficialScript:
    data = Path(path).read_bytes()
    try:
        tree = ast.parse(data, filename=path)
    except (SyntaxError, ValueError) as error:
        raise _unusable(f"{path} is not a Python file ({error})") from None
    missing: list[str] = []
    prompt = _judge_prompt(tree, missing)
    template = _question_template(tree, missing)
    call = _judge_call(tree, missing)
    if missing:
        raise _unusable(f"{path} is not the E-VAds evaluation script this protocol reads: "
                        + "; ".join(missing))
    assert prompt is not None and template is not None and call is not None
    return OfficialScript(Path(path), hashlib.sha256(data).hexdigest(), prompt, template, call)


# ---- what is read from the syntax tree ----------------------------------------------------

def _assigned(node: ast.AST, name: str) -> ast.expr | None:
    """The value of ``name = ...`` (or ``name: T = ...``) when ``node`` is that statement."""
    if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets):
        return node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
            and node.target.id == name:
        return node.value
    return None


def _judge_prompt(tree: ast.Module, missing: list[str]) -> str | None:
    values = [v for node in tree.body if (v := _assigned(node, JUDGE_PROMPT_NAME)) is not None]
    if not values or not isinstance(values[-1], ast.Constant) \
            or not isinstance(values[-1].value, str):
        missing.append(f"a module-level string {JUDGE_PROMPT_NAME} = \"\"\"...\"\"\"")
        return None
    prompt = values[-1].value
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as error:
        missing.append(f"{JUDGE_PROMPT_NAME} that str.format can fill ({error})")
        return None
    unknown = sorted(fields - set(JUDGE_PROMPT_FIELDS))
    if unknown or "model_output" not in fields:
        missing.append(f"{JUDGE_PROMPT_NAME} with placeholders among "
                       f"{{{'}, {'.join(JUDGE_PROMPT_FIELDS)}}} including {{model_output}}"
                       + (f" (found {unknown})" if unknown else ""))
        return None
    return prompt


def _functions(tree: ast.Module) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def _column_read(value: ast.expr) -> str | None:
    """``'asr_input'`` for ``sample['asr_input']`` (any mapping name), else None."""
    if isinstance(value, ast.Subscript) and isinstance(value.slice, ast.Constant) \
            and isinstance(value.slice.value, str):
        return value.slice.value
    return None


def _question_template(tree: ast.Module, missing: list[str]) -> QuestionTemplate | None:
    expected = (f"an f-string assigned to {QUESTION_NAME} whose names are read from test "
                f"columns ({', '.join(TEMPLATE_COLUMNS)})")
    for function in _functions(tree):
        found = [(node, v) for node in ast.walk(function)
                 if (v := _assigned(node, QUESTION_NAME)) is not None]
        if not found:
            continue
        node, value = found[-1]
        if not isinstance(value, ast.JoinedStr):
            break
        columns = {}
        for statement in ast.walk(function):
            if getattr(statement, "lineno", node.lineno) >= node.lineno:
                continue
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and \
                    isinstance(statement.targets[0], ast.Name):
                column = _column_read(statement.value)
                name = statement.targets[0].id
                if column is not None and statement.lineno > columns.get(name, (0, ""))[0]:
                    columns[name] = (statement.lineno, column)
        parts: list[tuple[str, str]] = []
        for piece in value.values:
            if isinstance(piece, ast.Constant) and isinstance(piece.value, str):
                parts.append(("text", piece.value))
                continue
            column = None
            if isinstance(piece, ast.FormattedValue) and piece.conversion == -1 \
                    and piece.format_spec is None:
                if isinstance(piece.value, ast.Name) and piece.value.id in columns:
                    column = columns[piece.value.id][1]
                else:
                    column = _column_read(piece.value)
            if column not in TEMPLATE_COLUMNS:
                missing.append(f"{expected}; cannot read {ast.unparse(piece)!r}")
                return None
            parts.append(("column", column))
        return QuestionTemplate(tuple(parts))
    missing.append(expected)
    return None


def _is_judge_create(node: ast.AST) -> bool:
    """``<client>.chat.completions.create(...)``."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        node.func.attr == "create" and isinstance(node.func.value, ast.Attribute) and \
        node.func.value.attr == "completions"


def _literal(node: ast.expr) -> object:
    try:
        return ast.literal_eval(node)
    except ValueError:
        return None


def _judge_call(tree: ast.Module, missing: list[str]) -> JudgeCall | None:
    for function in _functions(tree):
        calls = [n for n in ast.walk(function) if _is_judge_create(n)]
        if not calls:
            continue
        keywords = {k.arg: _literal(k.value) for k in calls[0].keywords if k.arg}
        absent = [name for name in CALL_KEYWORDS if keywords.get(name) is None]
        if absent:
            missing.append(f"the judge call .chat.completions.create(...) with literal "
                           f"{', '.join(absent)}")
            return None
        tries = _argument_default(function, RETRIES_ARG)
        sleeps = [_literal(n.args[0]) for n in ast.walk(function) if isinstance(n, ast.Call)
                  and isinstance(n.func, ast.Attribute) and n.func.attr == "sleep" and n.args]
        if not isinstance(tries, int) or tries < 1:
            missing.append(f"a {RETRIES_ARG}=N default on {function.name}(), the judge's tries")
            return None
        if not sleeps or not isinstance(sleeps[0], (int, float)):
            missing.append(f"time.sleep(N) between tries in {function.name}()")
            return None
        return JudgeCall(model=str(keywords["model"]),
                         params={name: keywords[name] for name in BODY_PARAMS},
                         timeout_s=float(keywords["timeout"]), tries=tries,
                         retry_delay_s=float(sleeps[0]))
    missing.append("a judge call <client>.chat.completions.create(model=..., max_tokens=..., "
                   "temperature=..., seed=..., timeout=...)")
    return None


def _argument_default(function: ast.FunctionDef | ast.AsyncFunctionDef, name: str) -> object:
    arguments = function.args
    positional = [*arguments.posonlyargs, *arguments.args]
    defaults = dict(zip([a.arg for a in positional[len(positional) - len(arguments.defaults):]],
                        arguments.defaults, strict=True))
    defaults.update({a.arg: d for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults,
                                              strict=True) if d is not None})
    return _literal(defaults[name]) if name in defaults else None
