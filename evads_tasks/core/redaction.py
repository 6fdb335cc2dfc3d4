"""The one redaction function: secrets out of any text before it is cut, logged or stored.

Why a module of its own: an error body, a raw reply or an exception text may carry the API
key (a server that echoes the ``Authorization`` header, a proxy error page). Redacting after
truncation leaks the part of the key that survives the cut, so every caller redacts the
whole text first, then cuts; cache, verdicts, samples, logs and reports all go through
:func:`redact`.

A secret is removed in every form a server may echo it in: as is, JSON-escaped (any of its
characters as ``\\uXXXX``, ``/`` as ``\\/``), percent-encoded (``%XX``) or as an HTML
character reference (``&#NN;``), in any mix. Secrets are the API key, and what a URL carries
besides its address (:func:`url_secrets`: the ``user:password@`` part, the Basic credential
made of it, query values).
"""

from __future__ import annotations

import base64
import functools
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "***"
# Key values shorter than this are not treated as secrets: replacing every "x" or "EMPTY"
# of a text would mangle it and protect nothing (vLLM's conventional key is "EMPTY").
MIN_SECRET_LENGTH = 6
# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_PATTERN = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)
# Environment variables holding URLs, whose credentials and query values are secrets.
URL_ENV_PATTERN = re.compile(r"_URL$", re.IGNORECASE)

# "Bearer <token>" anywhere, and "Authorization: <scheme> <value>" in any quoting (headers
# echoed as text, as JSON, as a Python repr). A bearer token is 6+ token characters with a
# digit or punctuation among them, so prose ("the bearer of good news") is left alone.
_TOKEN = r"[A-Za-z0-9._~+/=:-]"
_BEARER = re.compile(rf"\b(Bearer|bearer|BEARER)(\s+)(?={_TOKEN}*[0-9._~+/=:-]){_TOKEN}{{6,}}")
_AUTHORIZATION = re.compile(
    r"(?i)((?:proxy-)?authorization\\?[\"']?\s*[:=]\s*\\?[\"']?)"
    r"(?:(?:bearer|basic|token)\s+)?[^\s\"'\\,;}\]]+")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret value and every Bearer/Authorization credential replaced.

    Secrets are replaced longest first, so a key that contains another is removed whole,
    each in any of its escaped forms (:func:`_any_form`).
    """
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, REDACTED)
        if any(mark in text for mark in _ESCAPE_MARKS):  # else only the form just replaced
            text = _any_form(secret).sub(REDACTED, text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


_ESCAPE_MARKS = ("\\", "%", "&#")


@functools.lru_cache(maxsize=64)
def _any_form(secret: str) -> re.Pattern[str]:
    """A pattern matching ``secret`` with each character as is, JSON-escaped (``\\u006b``,
    ``\\/``), percent-encoded (``%6B``, UTF-8 bytes) or an HTML reference (``&#107;``,
    ``&#x6b;``), in any mix and any case of hex digits."""
    def hex_of(value: int, digits: int) -> str:
        return "".join(f"[{c}{c.upper()}]" if c.isalpha() else c
                       for c in f"{value:0{digits}x}")

    parts = []
    for char in secret:
        code = ord(char)
        units = ([code] if code <= 0xFFFF else
                 [0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)])
        forms = [re.escape(char), "".join(rf"\\u{hex_of(u, 4)}" for u in units),
                 "".join(f"%{hex_of(b, 2)}" for b in char.encode("utf-8")),
                 rf"&#0*{code};", rf"&#[xX]0*{hex_of(code, 1)};"]
        if char == "/":
            forms.append(r"\\/")
        parts.append("(?:" + "|".join(forms) + ")")
    return re.compile("".join(parts))


def url_secrets(url: str | None) -> list[str]:
    """What a URL carries that is a secret: the user and password of its ``user:pass@`` part
    (as written and percent-decoded), the Basic credential made of them, and its query
    values. Empty for a plain ``scheme://host[:port]/path``."""
    if not url:
        return []
    try:
        parts = urlsplit(url.strip())
        username, password = parts.username, parts.password
    except ValueError:  # a malformed URL (a bad port): nothing to find in it
        return []
    found = []
    for value in (username, password):
        if value:
            found += [value, unquote(value)]
    if username is not None or password is not None:
        pair = f"{unquote(username or '')}:{unquote(password or '')}"
        found.append(base64.b64encode(pair.encode("utf-8")).decode("ascii"))
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=False)]
    return [value for value in dict.fromkeys(found) if len(value) >= MIN_SECRET_LENGTH]


def redact_cut(text: str, limit: int, secrets: Iterable[str | None] = ()) -> str:
    """Redact, then cut to ``limit`` characters (marking the cut): never the other order."""
    text = redact(text, secrets)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment's secret-looking variables (``*API_KEY``, ``*_TOKEN``, ...)
    and the credentials and query values of its URLs (``*_URL``: :func:`url_secrets`)."""
    env = os.environ if env is None else env
    found = [value for name, value in env.items()
             if SECRET_ENV_PATTERN.search(name) and len(value) >= MIN_SECRET_LENGTH]
    return found + [secret for name, value in env.items() if URL_ENV_PATTERN.search(name)
                    for secret in url_secrets(value)]
