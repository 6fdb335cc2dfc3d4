"""The one redaction function: secrets out of any text before it is cut, logged or stored.

Why a module of its own: an error body, a raw reply or an exception text may carry the API
key (a server that echoes the ``Authorization`` header, a proxy error page). Redacting after
truncation leaks the part of the key that survives the cut, so every caller redacts the
whole text first, then cuts; cache, verdicts, samples, logs and reports all go through
:func:`redact`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "***"
# Key values shorter than this are not treated as secrets: replacing every "x" or "EMPTY"
# of a text would mangle it and protect nothing (vLLM's conventional key is "EMPTY").
MIN_SECRET_LENGTH = 6
# Environment variables whose values are secrets wherever they appear.
SECRET_ENV_PATTERN = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$", re.IGNORECASE)

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

    Secrets are replaced longest first, so a key that contains another is removed whole.
    """
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH},
                         key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)


def redact_cut(text: str, limit: int, secrets: Iterable[str | None] = ()) -> str:
    """Redact, then cut to ``limit`` characters (marking the cut): never the other order."""
    text = redact(text, secrets)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more chars]"


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment's secret-looking variables (``*API_KEY``, ``*_TOKEN``, ...)."""
    env = os.environ if env is None else env
    return [value for name, value in env.items()
            if SECRET_ENV_PATTERN.search(name) and len(value) >= MIN_SECRET_LENGTH]
