"""A loopback OpenAI-compatible judge server for tests and benchmarks (a stand-in, not a model).

``JudgeServer`` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free port) that answers
``POST .../chat/completions`` like vLLM or OpenAI. What it replies is scripted:

- ``policy``: a function from the request's ``messages`` to the reply text. The default,
  ``fake_judge_policy``, is a deterministic fake judge (NOT a real model): it reads the
  reference and the model answer back from the prompt sections of
  ``evads_tasks.core.judge.prompts`` and returns ``Answer: 1.0`` when the answer contains the
  reference's key text, lower levels as less of the reference's text is in the answer.
- ``latency_s``: added to every call.
- ``faults``: per call, in call order: a sequence (call i gets ``faults[i]``, calls past its
  end are served normally) or a function of the 0-based call index; each fault is None or one
  of ``FAULTS``: "timeout" (hang until the client gives up), "500", "429" (with
  ``Retry-After: retry_after``), "401" (unauthorized), "garbage" (a 200 reply with no Answer
  line), "bad_json" (a 200 whose body is not JSON), "trickle" (a 200 whose body arrives one
  byte every ``trickle_s``), "close" (the connection closed without a reply), "echo" (a 500
  whose body echoes the request's Authorization header after ``echo_pad`` filler characters,
  an int or a function of the call index, so a test can put the key at any offset).
  Hostile replies (issue 19): "gzip_corrupt" (a 200 whose gzip body is damaged),
  "charset" (a 200 of good JSON declaring ``charset=x-unknown-8``), "surrogate" (a 200
  whose JSON content holds a lone ``\\ud83d``), "gzip_bomb" (a 200 of ``bomb_mb`` MB of
  zeros, gzip-compressed to about a thousandth), "huge" (a 200 whose content is ``huge_mb`` MB
  of filler before the Answer line), "redirect_302"/"redirect_307" (to
  ``http://judge.elsewhere.example/v1/chat/completions``), "model_echo" (a good 200 whose
  ``model`` echoes the Authorization header and the credentials it carries) and
  "escaped_echo" (a 500 echoing the same, and the request path, every character
  JSON-escaped as ``\\uXXXX`` and every ``/`` as ``\\/``).
- ``usage``: the reply's ``usage`` as a function of the call index and the reply text
  (``{"prompt_tokens": ..., "completion_tokens": ...}``; ``total_tokens`` is added), or None
  for zeros; ``served_model``: the reply's ``model``, a name or a function of the call index
  (None: the model the request named), so a test can script a re-pointed alias.

Server limits, as real servers answer them (``tests/real_server.py`` runs real ones):

- ``refuse_formats``: ``response_format`` types the server refuses the way llama-cpp-python
  0.3.36 refuses ``json_schema`` (HTTP 500, its pydantic error in the body);
  ``server.refused`` counts those requests;
- ``context_window``: a request whose prompt (counted with ``evads_tasks.core.tokens``) and
  ``max_tokens`` do not fit gets the 400 vLLM, OpenAI and llama-cpp-python send ("This
  model's maximum context length is N tokens. However, you requested ..."); ``list_context``
  also lists the window in ``GET /models`` as vLLM does (``max_model_len``);
- ``slots``: how many requests it serves at once; the others wait their turn, as on
  llama.cpp with ``-np 1`` (``latency_s`` each).

``server.calls`` counts every POST (faulted ones too); ``server.max_in_flight`` is the most
calls it served at once; ``server.requests`` keeps each JSON body and ``server.auth_headers``
each Authorization header. Use it as a context manager::

    with JudgeServer(latency_s=0.05, faults=["500", "429"]) as server:
        judge = HttpJudge(server.url, "fake-judge", cache_dir=tmp_path)

``ServerProcess`` runs one in a child process, as a real server runs (its threads do not
share the client's interpreter lock): what the benchmarks time.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import multiprocessing
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from evads_tasks.core.judge.prompts import (
    SECTION_ANSWER,
    SECTION_CLUES,
    SECTION_METADATA,
    SECTION_REFERENCE,
    SECTION_TRACE,
    read_sections,
)
from evads_tasks.core.scoring import LEVELS
from evads_tasks.core.tokens import message_tokens

FAULTS = ("timeout", "500", "429", "401", "garbage", "bad_json", "trickle", "close", "echo",
          "gzip_corrupt", "charset", "surrogate", "gzip_bomb", "huge", "redirect_302",
          "redirect_307", "model_echo", "escaped_echo")
REDIRECT_TARGET = "http://judge.elsewhere.example/v1/chat/completions"
GARBAGE_REPLY = "I think the answer is quite good overall, maybe."
Policy = Callable[[list[dict[str, Any]]], str]
FaultPlan = Sequence[str | None] | Callable[[int], str | None]

_KEY_TEXT = re.compile(r"[\W_]+", re.UNICODE)


def _key_text(text: str) -> str:
    """Lower-case text without spaces or punctuation: what "contains" is checked on."""
    return _KEY_TEXT.sub("", text.lower())


@functools.lru_cache(maxsize=2)
def gzip_bomb(megabytes: int) -> bytes:
    """``megabytes`` MB of zeros, gzip-compressed (about a thousandth of that on the wire)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    zeros = bytes(2**20)
    return b"".join([*(compressor.compress(zeros) for _ in range(megabytes)),
                     compressor.flush()])


def credentials(authorization: str | None) -> str:
    """The Authorization header, and the user:password a Basic one carries, as a hostile
    server would echo them."""
    text = f"Authorization: {authorization}"
    if authorization and authorization.lower().startswith("basic "):
        text += " = " + base64.b64decode(authorization.split(" ", 1)[1]).decode("utf-8")
    return text


def json_escaped(text: str) -> str:
    """Every character as ``\\uXXXX`` and ``/`` as ``\\/``: JSON that still reads as ``text``."""
    return "".join("\\/" if char == "/" else f"\\u{ord(char):04x}" for char in text)


def fake_judge_policy(messages: list[dict[str, Any]]) -> str:
    """Deterministic loopback stand-in for an LLM judge (not a real model).

    Answer rubric: 1.0 when the answer contains the whole reference key text; else by the
    share of the reference's characters found in the answer (>= 0.75 -> 0.75, >= 0.5 -> 0.5,
    >= 0.25 -> 0.25, else 0). Trace rubric: the same, with the clues (or metadata) as reference.
    """
    prompt = str(messages[-1]["content"])
    sections = read_sections(prompt)
    if SECTION_TRACE in sections:
        reference = sections.get(SECTION_CLUES) or sections.get(SECTION_METADATA, "")
        answer = sections[SECTION_TRACE]
    else:
        reference, answer = sections.get(SECTION_REFERENCE, ""), sections.get(SECTION_ANSWER, "")
    want, got = _key_text(reference), _key_text(answer)
    if want and want in got:
        score = "1.0"
    else:
        pool = list(got)
        found = 0
        for char in want:
            if char in pool:
                pool.remove(char)
                found += 1
        share = found / len(want) if want else 0.0
        score = next((s for t, s in ((0.75, "0.75"), (0.5, "0.5"), (0.25, "0.25"))
                      if share >= t), "0")
    return f"Loopback fake judge (not a real model): reference overlap checked.\nAnswer: {score}"


def hashed_levels_policy(messages: list[dict[str, Any]]) -> str:
    """Loopback policy (not a model): a level picked by a hash of the judged text, so that
    different texts get different levels (a random model's gibberish never overlaps a
    reference, and a reference-overlap judge would score it all 0)."""
    sections = read_sections(str(messages[-1]["content"]))
    text = sections.get(SECTION_ANSWER) or sections.get(SECTION_TRACE, "")
    return f"Scripted loopback judge.\nAnswer: {LEVELS[zlib.crc32(text.encode()) % 5]}"


class JudgeServer:
    """Threaded loopback chat-completions server with a scripted policy and fault injection."""

    def __init__(self, policy: Policy = fake_judge_policy, *, latency_s: float = 0.0,
                 faults: FaultPlan = (), retry_after: str = "0.05",
                 hang_s: float = 30.0, model: str = "loopback-fake-judge",
                 trickle_s: float = 0.2, echo_pad: int | Callable[[int], int] = 0,
                 usage: Callable[[int, str], dict[str, int]] | None = None,
                 served_model: str | Callable[[int], str] | None = None,
                 bomb_mb: int = 200, huge_mb: int = 5,
                 refuse_formats: Sequence[str] = (), context_window: int | None = None,
                 list_context: bool = False, slots: int | None = None) -> None:
        for fault in faults if not callable(faults) else ():
            if fault is not None and fault not in FAULTS:
                raise ValueError(f"unknown fault {fault!r}; use one of {FAULTS}")
        self.policy, self.latency_s, self.faults = policy, latency_s, faults
        self.retry_after, self.hang_s, self.model = retry_after, hang_s, model
        self.trickle_s, self.echo_pad = trickle_s, echo_pad
        self.usage, self.served_model = usage, served_model
        self.bomb_mb, self.huge_mb = bomb_mb, huge_mb
        self.refuse_formats, self.context_window = tuple(refuse_formats), context_window
        self.list_context = list_context
        self.refused = 0
        self._slots = threading.BoundedSemaphore(slots) if slots else None
        self.requests: list[dict[str, Any]] = []
        self.auth_headers: list[str | None] = []
        self._calls = 0
        self._in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def url(self) -> str:
        """The base URL to give a client, e.g. http://127.0.0.1:PORT/v1."""
        if self._httpd is None:
            raise RuntimeError("JudgeServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fault_for(self, index: int) -> str | None:
        if callable(self.faults):
            return self.faults(index)
        return self.faults[index] if index < len(self.faults) else None

    def limit_error(self, payload: dict[str, Any]) -> tuple[int, str] | None:
        """(status, message) when the request passes a server limit, else None."""
        fmt = payload.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind in self.refuse_formats:
            with self._lock:
                self.refused += 1
            return 500, ("1 validation error:\n  {'type': 'literal_error', 'loc': ('body', "
                         "'response_format', 'type'), 'msg': \"Input should be 'text' or "
                         f"'json_object'\", 'input': '{kind}'}}")
        if self.context_window is None:
            return None
        prompt = message_tokens(payload["messages"])
        budget = int(payload.get("max_tokens") or 0)
        if prompt + budget <= self.context_window:
            return None
        return 400, (f"This model's maximum context length is {self.context_window} tokens. "
                     f"However, you requested {prompt + budget} tokens ({prompt} in the "
                     f"messages, {budget} in the completion). Please reduce the length of "
                     "the messages or completion.")

    def start(self) -> JudgeServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: tests read counters, not access logs."""

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None,
                      content_type: str = "application/json") -> None:
                """One reply; a Content-Type that names a charset is sent as given."""
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None):
                body = json.dumps({"error": {"message": message, "code": status}}).encode()
                self._send(status, body, headers)

            def do_GET(self) -> None:
                if not self.path.rstrip("/").endswith("/models"):
                    self._error(404, f"no route {self.path}")
                    return
                entry: dict[str, Any] = {"id": server.model, "object": "model"}
                if server.list_context and server.context_window:
                    entry["max_model_len"] = server.context_window
                self._send(200, json.dumps({"object": "list", "data": [entry]}).encode())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if not urlsplit(self.path).path.rstrip("/").endswith("/chat/completions"):
                    self._error(404, f"no route {self.path}")
                    return
                try:
                    payload = json.loads(body)
                    messages = payload["messages"]
                except (ValueError, KeyError, TypeError):
                    self._error(400, "body must be JSON with 'messages'")
                    return
                with server._lock:
                    index = server._calls
                    server._calls += 1
                    server.requests.append(payload)
                    server.auth_headers.append(self.headers.get("Authorization"))
                    server._in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server._in_flight)
                try:
                    if (limit := server.limit_error(payload)) is not None:
                        self._error(*limit)
                    elif server._slots is not None:
                        with server._slots:
                            self._answer(index, payload, messages)
                    else:
                        self._answer(index, payload, messages)
                finally:
                    with server._lock:
                        server._in_flight -= 1

            def _answer(self, index: int, payload: dict[str, Any], messages: list) -> None:
                fault = server.fault_for(index)
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "timeout":
                    server._stopping.wait(server.hang_s)
                    self.close_connection = True
                    return
                if fault == "500":
                    self._error(500, "injected server error")
                    return
                if fault == "401":
                    self._error(401, "injected: invalid API key")
                    return
                if fault == "429":
                    self._error(429, "injected rate limit", {"Retry-After": server.retry_after})
                    return
                if fault == "bad_json":
                    self._send(200, b"<html>not json</html>", content_type="text/html")
                    return
                if fault == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)  # socket.SHUT_RDWR: no status line at all
                    return
                if fault == "echo":
                    pad = server.echo_pad(index) if callable(server.echo_pad) else server.echo_pad
                    echoed = f"Authorization: {self.headers.get('Authorization')}"
                    self._error(500, "x" * pad + echoed + " (request headers echoed)")
                    return
                if fault in ("redirect_302", "redirect_307"):
                    self._send(int(fault[-3:]), b"", {"Location": REDIRECT_TARGET})
                    return
                if fault == "escaped_echo":
                    echoed = f"{credentials(self.headers.get('Authorization'))} on {self.path}"
                    body = ('{"error": {"message": "' + json_escaped(echoed) +
                            '", "code": 500}}').encode()
                    self._send(500, body)
                    return
                if fault in ("gzip_corrupt", "gzip_bomb"):
                    body = gzip_bomb(server.bomb_mb) if fault == "gzip_bomb" else \
                        gzip.compress(json.dumps(_reply(index, "Answer: 1.0", "m")).encode())
                    if fault == "gzip_corrupt":
                        body = body[:12] + bytes(b ^ 0x5A for b in body[12:-8]) + body[-8:]
                    self._send(200, body, {"Content-Encoding": "gzip"})
                    return
                if fault == "charset":
                    body = json.dumps(_reply(index, "Answer: 1.0", "m")).encode()
                    self._send(200, body, content_type="application/json; charset=x-unknown-8")
                    return
                if fault == "surrogate":
                    body = json.dumps(_reply(index, "Answer: 1.0", "m")).replace(
                        "Answer: 1.0", "Answer: 1.0 \\ud83d").encode()
                    self._send(200, body)
                    return
                if fault == "trickle":
                    body = json.dumps({"choices": [{"message": {"content": "Answer: 1.0"}}]})
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    for byte in body.encode():
                        if server._stopping.wait(server.trickle_s):
                            break
                        try:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                        except OSError:  # the client gave up
                            break
                    self.close_connection = True
                    return
                text = GARBAGE_REPLY if fault == "garbage" else server.policy(messages)
                if fault == "huge":
                    text = "x" * (server.huge_mb * 2**20) + "\n" + text
                usage = (server.usage(index, text) if server.usage is not None else
                         {"prompt_tokens": 0, "completion_tokens": 0})
                usage = {**usage, "total_tokens": sum(usage.values())}
                served = server.served_model
                served = served(index) if callable(served) else served
                if fault == "model_echo":
                    served = credentials(self.headers.get("Authorization"))
                reply = _reply(index, text, served or payload.get("model", server.model), usage)
                self._send(200, json.dumps(reply, ensure_ascii=False).encode("utf-8"))

        self._stopping.clear()
        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> JudgeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up mid-reply (a client giving up on a gzip bomb or a
    deadline): that is the point of those faults, not a server error. Has room for every
    client's connections at once (the default backlog of 5 refuses some when two ranks open
    16 each, which a real server would not)."""

    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _reply(index: int, text: str, model: str, usage: dict | None = None) -> dict:
    """A chat-completions reply body."""
    return {"id": f"chatcmpl-loopback-{index}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": text}}],
            "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def _serve_in_child(make_policy: Callable[[], Policy] | None, latency_s: float,
                    connection) -> None:
    """The child of :class:`ServerProcess`: sends its URL, then its counts on request."""
    policy = make_policy() if make_policy is not None else fake_judge_policy
    with JudgeServer(policy, latency_s=latency_s) as server:
        connection.send(server.url)
        connection.recv()
        connection.send((server.calls, server.max_in_flight))


class ServerProcess:
    """A :class:`JudgeServer` in a child process; ``make_policy`` builds its policy there
    (default: the fake judge). ``url`` while it runs; ``stop()`` returns its (calls, most
    calls in flight)."""

    def __init__(self, make_policy: Callable[[], Policy] | None = None,
                 latency_s: float = 0.0) -> None:
        self._connection, child = multiprocessing.Pipe()
        self._process = multiprocessing.Process(target=_serve_in_child, daemon=True,
                                                args=(make_policy, latency_s, child))
        self._process.start()
        self.url: str = self._connection.recv()

    def stop(self) -> tuple[int, int]:
        self._connection.send("stop")
        counts = self._connection.recv()
        self._process.join(timeout=10)
        return counts
