"""The shared chat-completions client against the real loopback server: deadline per call,
retry budget, one WARNING per retry, fatal 4xx, redaction before any cut."""

from __future__ import annotations

import logging
import time

import pytest
from judge_server import JudgeServer

from evads_tasks.core.chat.client import MESSAGE_BODY_CHARS, ChatClient, ChatError
from evads_tasks.core.redaction import REDACTED, env_secrets, redact, redact_cut

SECRET = "sk-SENTINEL-1234"
MESSAGES = [{"role": "user", "content": "Rate this.\nAnswer:"}]


def client(server: JudgeServer, **options) -> ChatClient:
    settings = {"timeout_s": 0.5, "backoff_base_s": 0.01, "backoff_max_s": 0.02,
                "max_attempts": 3, **options}
    return ChatClient(server.url, "judge-model", SECRET, **settings)


def leaked(text: str | None, secret: str = SECRET, fragment: int = 5) -> list[str]:
    """Every piece of ``secret`` of ``fragment`` characters found in ``text``."""
    text = text or ""
    return [secret[i:i + fragment] for i in range(len(secret) - fragment + 1)
            if secret[i:i + fragment] in text]


def test_params_go_into_the_body_verbatim_and_the_reply_says_who_served_it() -> None:
    with JudgeServer() as server, client(server) as chat:
        reply = chat.complete(MESSAGES, temperature=0.0, seed=42, max_tokens=8000,
                              response_format={"type": "text"})
        url = server.url
    body = server.requests[0]
    assert body == {"model": "judge-model", "messages": MESSAGES, "temperature": 0.0,
                    "seed": 42, "max_tokens": 8000, "response_format": {"type": "text"}}
    assert server.auth_headers == [f"Bearer {SECRET}"]
    assert reply.served_model == "judge-model" and reply.attempts == 1
    assert (reply.prompt_tokens, reply.completion_tokens) == (0, 0)
    assert chat.name == f"judge-model @ {url}" and SECRET not in repr(chat)


@pytest.mark.parametrize("fault", ["trickle", "timeout"])
def test_the_timeout_bounds_the_whole_call_not_each_read(fault: str) -> None:
    """A server that trickles a byte every 0.2 s (each read is quick) or says nothing: the call
    still ends at its 0.6 s deadline."""
    with JudgeServer(faults=lambda i: fault, trickle_s=0.2, hang_s=10) as server, \
            client(server, timeout_s=0.6, max_attempts=1) as chat:
        started = time.monotonic()
        with pytest.raises(ChatError) as caught:
            chat.complete(MESSAGES)
        elapsed = time.monotonic() - started
    assert 0.55 <= elapsed < 0.9, elapsed
    assert "timeout" in caught.value.reason and caught.value.attempts == 1


def test_the_retry_budget_caps_retry_after() -> None:
    """Retry-After 30 s with a 1 s budget: no wait at all, the call fails at once saying why."""
    with JudgeServer(faults=lambda i: "429", retry_after="30") as server, \
            client(server, retry_budget_s=1.0, max_attempts=6) as chat:
        started = time.monotonic()
        with pytest.raises(ChatError) as caught:
            chat.complete(MESSAGES)
    assert time.monotonic() - started < 0.5
    assert server.calls == 1 and caught.value.status == 429
    assert "retry budget spent (next wait 30.0s" in str(caught.value)
    with JudgeServer(faults=lambda i: "429", retry_after="600") as server, \
            client(server, retry_budget_s=1.0, retry_after_max_s=0.05) as chat:
        with pytest.raises(ChatError):
            chat.complete(MESSAGES)  # Retry-After capped at 0.05 s: all 3 attempts made
    assert server.calls == 3


def test_each_retry_logs_one_warning_with_reason_attempt_and_wait(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="evads_tasks.core.chat.client")
    with JudgeServer(faults=["500", "close", None]) as server, client(server) as chat:
        reply = chat.complete(MESSAGES)
    assert reply.attempts == 3 and server.calls == 3
    lines = [r.getMessage() for r in caplog.records if r.name == "evads_tasks.core.chat.client"]
    assert len(lines) == 2 and all(r.levelno == logging.WARNING for r in caplog.records)
    assert "attempt 1/3 failed (HTTP 500 server error" in lines[0]
    assert "attempt 2/3 failed (connection error" in lines[1]
    assert all("; retrying in 0.0" in line for line in lines)


def test_fixed_delay_between_tries_as_in_the_authors_script() -> None:
    with JudgeServer(faults=["500", "500", None]) as server, \
            client(server, retry_delay_s=0.2) as chat:
        started = time.monotonic()
        assert chat.complete(MESSAGES).attempts == 3
    assert 0.4 <= time.monotonic() - started < 0.8


def test_a_4xx_is_fatal_and_a_refused_connection_is_retried() -> None:
    with JudgeServer(faults=["401"]) as server, client(server) as chat:
        with pytest.raises(ChatError) as caught:
            chat.complete(MESSAGES)
        url = server.url
    assert caught.value.fatal and caught.value.status == 401 and server.calls == 1
    assert "check the API key" in str(caught.value)
    with ChatClient(url, "judge-model", SECRET, timeout_s=0.5, backoff_base_s=0.01,
                    max_attempts=3) as chat:  # the server is gone: nothing listens there
        with pytest.raises(ChatError) as caught:
            chat.complete(MESSAGES)
    assert not caught.value.fatal and caught.value.attempts == 3
    assert "connection error" in caught.value.reason


def test_an_echoed_key_never_survives_a_cut_at_any_position() -> None:
    """The server echoes ``Authorization: Bearer <key>`` after 0, 1, 2 ... filler characters,
    so the key straddles the message's cut at every offset; neither the message nor the raw
    body may hold a fragment of it."""
    prefix = len('{"error": {"message": "')
    offsets = range(max(0, MESSAGE_BODY_CHARS - prefix - 40), MESSAGE_BODY_CHARS - prefix + 5)
    pads = list(offsets)
    with JudgeServer(faults=lambda i: "echo", echo_pad=lambda i: pads[i]) as server, \
            client(server, max_attempts=1) as chat:
        for _ in pads:
            with pytest.raises(ChatError) as caught:
                chat.complete(MESSAGES)
            assert not leaked(str(caught.value)), str(caught.value)
            assert not leaked(caught.value.raw)
            assert "Authorization: ***" in (caught.value.raw or "")
    assert server.calls == len(pads)


def test_redact_removes_keys_and_credentials_before_cutting() -> None:
    text = (f'{{"headers": {{"authorization": "Bearer {SECRET}", '
            f'"proxy-authorization": "Basic dXNlcjpwYXNzd29yZA=="}}}} Bearer tok-123456')
    assert leaked(redact(text, [SECRET])) == []
    unknown = redact(text)  # credentials of keys it was not told about go too
    assert "dXNlcjpwYXNzd29yZA" not in unknown and "tok-123456" not in unknown
    for prose in ("the bearer of good news", "BP Basic Perception"):
        assert redact(prose, []) == prose
    for cut in range(len(text) + 2):
        assert not leaked(redact_cut(text, cut, [SECRET]))
    assert redact(f"{SECRET}-extra {SECRET}", [SECRET, f"{SECRET}-extra"]) == \
        f"{REDACTED} {REDACTED}"
    assert env_secrets({"EVADS_JUDGE_API_KEY": SECRET, "HF_TOKEN": "hf_abcdefgh",
                        "PATH": "/usr/bin", "SHORT_TOKEN": "x"}) == [SECRET, "hf_abcdefgh"]
