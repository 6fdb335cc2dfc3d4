"""What an OpenAI-compatible server says about itself, read so that requests fit it.

Why: servers nobody here wrote answer a request they cannot serve in their own words. Two
answers are about the server, not about the call, and retrying the same body cannot mend
them:

- **a refused parameter**: llama-cpp-python answers ``response_format: {"type":
  "json_schema"}`` with HTTP 500 (its request model allows only ``text`` and
  ``json_object``); others answer 400 or 422. :func:`refused_parameter` names the parameter
  so that the caller asks again without it (``core/chat/response_format.py``).
- **the context window**: a completion budget that does not fit beside the prompt is a 400
  on vLLM, llama-cpp-python and OpenAI ("This model's maximum context length is 2048
  tokens. However, you requested 9422 tokens (1422 in the messages, 8000 in the
  completion)"), and on llama.cpp's server when the prompt alone is too long ("request (3032
  tokens) exceeds the available context size (2048 tokens)"); llama.cpp accepts an
  oversized budget and generates until the context is full. :func:`parse_context_error`
  reads the window (and the prompt's tokens) from the error, :func:`context_from_models`
  from ``GET /models`` where the server lists it (vLLM and SGLang: ``max_model_len``;
  llama.cpp: ``meta.n_ctx``, the per-slot context); :func:`fitted_max_tokens` is the budget
  that fits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Body keys that hold a completion budget (OpenAI's newer name beside the classic one).
BUDGET_KEYS = ("max_tokens", "max_completion_tokens")
# Tokens kept free beside the prompt when a budget is clipped: chat templates add a few
# tokens the client cannot count, and a prompt estimated here may be a little short.
CONTEXT_MARGIN = 16
# A budget clipped below this is no answer at all: the item fails with the context error.
MIN_COMPLETION_TOKENS = 32
# In the reason of every context-length failure (ChatError, a judge's error): callers that
# keep only the text tell it from a failure a rerun may mend.
OVERFLOW_REASON = "the request does not fit the server's context"

_WINDOW = (
    re.compile(r"maximum context length (?:is|of) (\d+)", re.IGNORECASE),
    re.compile(r"available context size \((\d+) tokens?\)", re.IGNORECASE),
    re.compile(r"exceed(?:s|ed)? (?:the )?context window of (\d+)", re.IGNORECASE),
    re.compile(r"\"n_ctx\"\s*:\s*(\d+)"),
)
_PROMPT = (
    re.compile(r"(\d+) (?:tokens )?(?:in|from) the (?:input )?messages", re.IGNORECASE),
    re.compile(r"your request has (\d+) input tokens", re.IGNORECASE),
    re.compile(r"request \((\d+) tokens?\) exceeds", re.IGNORECASE),
    re.compile(r"\"n_prompt_tokens\"\s*:\s*(\d+)"),
)
_CONTEXT_WORDS = re.compile(r"context_length_exceeded|exceed_context_size|maximum context "
                            r"length|context (?:window|size)", re.IGNORECASE)
# Where a server lists a model's context in GET /models, most specific first.
_MODEL_CONTEXT_KEYS = ("max_model_len", "context_length", "context_window", "n_ctx")


@dataclass(frozen=True)
class ContextOverflow:
    """A context-length error: the server's window and, when it said, the prompt's tokens."""

    window: int
    prompt_tokens: int | None


def _first_int(patterns: tuple[re.Pattern, ...], text: str) -> int | None:
    for pattern in patterns:
        if match := pattern.search(text):
            return int(match.group(1))
    return None


def parse_context_error(text: str | None) -> ContextOverflow | None:
    """The window and prompt size in a context-length error body, else None."""
    if not text or not _CONTEXT_WORDS.search(text):
        return None
    window = _first_int(_WINDOW, text)
    if window is None or window <= 0:
        return None
    return ContextOverflow(window, _first_int(_PROMPT, text))


def refused_parameter(status: int, text: str | None, body: dict[str, Any]) -> str | None:
    """``"response_format"`` when an error answers a request that carried one and says the
    server does not take it: any 4xx/5xx whose body names it, or a 400/422 that is not a
    context-length error (a bad key, URL or model is 401/403/404). None otherwise."""
    if "response_format" not in body or status < 400 or status in (401, 403, 404, 408, 429):
        return None
    text = text or ""
    if parse_context_error(text) is not None:
        return None
    if "response_format" in text or "json_schema" in text or status in (400, 422):
        return "response_format"
    return None


def context_from_models(listing: Any, model: str) -> int | None:
    """The context window ``GET /models`` gives for ``model`` (or for the only model a
    server lists: llama.cpp answers any name), else None."""
    entries = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(entries, list):
        return None
    entries = [e for e in entries if isinstance(e, dict)]
    named = [e for e in entries if e.get("id") == model or model in (e.get("aliases") or ())]
    chosen = named[0] if named else entries[0] if len(entries) == 1 else None
    if chosen is None:
        return None
    for where in (chosen, chosen.get("meta")):
        if not isinstance(where, dict):
            continue
        for key in _MODEL_CONTEXT_KEYS:
            value = where.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


def fitted_max_tokens(requested: int, window: int, prompt_tokens: int) -> int | None:
    """The budget to send: ``requested`` when it fits beside the prompt, else what room is
    left (minus a margin); None when not even ``MIN_COMPLETION_TOKENS`` fit."""
    room = window - prompt_tokens - CONTEXT_MARGIN
    if requested <= room:
        return requested
    return room if room >= MIN_COMPLETION_TOKENS else None
