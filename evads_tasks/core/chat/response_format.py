"""Structured output from any OpenAI-compatible server: ask for a JSON schema, and fall back
once per server and model when the server refuses it.

Why: ``response_format: {"type": "json_schema"}`` is what vLLM, SGLang, llama.cpp's server
and OpenAI enforce, but llama-cpp-python answers it with HTTP 500 and some DashScope models
and Ollama versions refuse or ignore it (README, "Servers"). Retrying a refusal cannot mend
it, so a refusal (``ChatError.refused``, see ``core/chat/server_fit.py``) moves the run one step
down ``MODES``, for good:

1. ``json_schema``: the schema in ``response_format`` (the server enforces it);
2. ``json_object``: ``{"type": "json_object", "schema": ...}``, the field llama-cpp-python
   and llama.cpp's server enforce by grammar (others ignore it), and the schema in the
   prompt, in words any model can read;
3. ``none``: no ``response_format``; the schema in the prompt.

Until a mode is confirmed (a server that answered a call in it), calls go one at a time, so
a refusing server sees one refused request per mode, not one per call in flight. The mode
found is kept in the cache file (``JudgeCache.put_capability``) so a rerun starts there, and
:meth:`StructuredOutput.describe` names it for the run's report. Validation is the caller's,
the same in every mode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from .client import ChatError

logger = logging.getLogger(__name__)

MODES = ("json_schema", "json_object", "none")
CAPABILITY = "response_format"
# Lower-case "json" on purpose: DashScope's json_object mode wants the word in the messages.
SCHEMA_IN_PROMPT = "Reply with one json object that satisfies this json schema:\n"
T = TypeVar("T")


def response_format(mode: str, schema: dict, name: str) -> dict | None:
    """The ``response_format`` body parameter of ``mode`` (None: send none)."""
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": name, "strict": True, "schema": schema}}
    if mode == "json_object":
        return {"type": "json_object", "schema": schema}
    return None


def messages_in_mode(mode: str, messages: list[dict], schema: dict) -> list[dict]:
    """``messages`` as sent in ``mode``: below ``json_schema`` the schema is added to the
    system message (a system message is added when there is none)."""
    if mode == "json_schema":
        return messages
    note = SCHEMA_IN_PROMPT + json.dumps(schema, ensure_ascii=False)
    if messages and messages[0].get("role") == "system" and isinstance(
            messages[0].get("content"), str):
        return [{**messages[0], "content": f"{messages[0]['content']}\n\n{note}"},
                *messages[1:]]
    return [{"role": "system", "content": note}, *messages]


def describe_modes(asked: str, used: str) -> str:
    """How a reply was asked for, in words (for reports)."""
    how = {"json_schema": "response_format json_schema (enforced by the server)",
           "json_object": "response_format json_object with the schema (in its `schema` "
                          "field and in the prompt)",
           "none": "no response_format; the schema in the prompt"}[used]
    return how if used == asked else f"{how}, instead of {asked}"


class StructuredOutput:
    """The response_format mode one server and model accept, found once per run.

    ``remembered``: (mode, refusals as JSON) an earlier run found (from the cache file); a
    run never starts above the mode asked for (``asked``). ``remember(mode, refusals)``
    stores a confirmed mode.
    """

    def __init__(self, asked: str, remembered: tuple[str, str] | None = None,
                 remember: Callable[[str, str], None] | None = None) -> None:
        earlier = remembered[0] if remembered else None
        if asked not in MODES or (earlier is not None and earlier not in MODES):
            raise ValueError(f"response_format mode must be one of {MODES}")
        start = max(MODES.index(asked), MODES.index(earlier) if earlier else 0)
        self.asked, self.mode = asked, MODES[start]
        self.remembered = earlier is not None and self.mode == earlier
        self.confirmed = self.remembered
        self.refusals: list[dict] = (json.loads(remembered[1]) if self.remembered
                                       and self.mode != asked else [])
        self._remember = remember
        self._probe = threading.Lock()   # one call at a time until a mode is confirmed
        self._state = threading.Lock()

    def call(self, send: Callable[[str], T]) -> T:
        """``send(mode)`` in the current mode; after a refusal, again in the next mode.
        Any other ChatError is the caller's."""
        while True:
            with self._turn():
                mode = self.mode
                try:
                    result = send(mode)
                except ChatError as error:
                    if error.refused != CAPABILITY or not self._fall_back(mode, error):
                        raise
                    continue
                self._confirm(mode)
                return result

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        if not self.confirmed:
            self._probe.acquire()
            if not self.confirmed:
                try:
                    yield
                finally:
                    self._probe.release()
                return
            self._probe.release()
        yield

    def _fall_back(self, mode: str, error: ChatError) -> bool:
        """Move below ``mode`` (unless another call already did); False at the last mode."""
        with self._state:
            if self.mode != mode:
                return True
            index = MODES.index(mode)
            if index + 1 == len(MODES):
                return False
            self.mode, self.confirmed = MODES[index + 1], False
            self.refusals.append({"mode": mode, "status": error.status,
                                  "reason": " ".join(error.reason.split())[:300]})
        logger.warning("the server refused response_format %s (%s); asking with %s from now "
                       "on", mode, error.reason[:300], describe_modes(self.asked, self.mode))
        return True

    def _confirm(self, mode: str) -> None:
        with self._state:
            if self.confirmed or self.mode != mode:
                return
            self.confirmed = True
            detail = json.dumps(self.refusals, ensure_ascii=False)
        if self._remember is not None:
            self._remember(mode, detail)

    def describe(self) -> dict:
        """The mode used, the one asked for, the refusals that led there and whether the
        mode came from an earlier run's cache: what a run report shows."""
        with self._state:
            return {"asked": self.asked, "used": self.mode, "refusals": list(self.refusals),
                    "remembered": self.remembered, "how": describe_modes(self.asked, self.mode)}
