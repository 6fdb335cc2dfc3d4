"""Reading a chat-completions reply as if the server were hostile (pure where it can be).

Why: one bad reply used to throw away a whole run after inference. A damaged gzip body, a
charset Python does not know or a lone UTF-16 surrogate escaped in the JSON raised past the
client's retry logic; a 204 KB gzip bomb inflated to 600 MB before the size cap was checked;
a redirect read as an empty body; a negative token count priced a run at billions. Each of
these is now :class:`BadReply`, one failed attempt with a reason, counted like a 500 when it
persists (a redirect is fatal at once: retrying cannot follow it). What a reply is stored as
is bounded too (:func:`stored_excerpt`): a multi-MB reply kept whole made 41 MB sample logs.
"""

from __future__ import annotations

import codecs
import itertools
import re
import time
import zlib
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

# A reply body larger than this is not a chat completion (a judge reply is a few KB); the
# cap holds for the bytes on the wire and for what they inflate to, checked while inflating.
MAX_BODY_BYTES = 16 * 2**20
# Content-Encodings this client inflates itself, under the cap (what it asks for).
ACCEPT_ENCODING = "gzip, deflate"
# No reply reports more tokens than this (the longest contexts are a few million tokens).
MAX_TOKENS_PER_REPLY = 10_000_000
# What is stored of a reply (sample logs, verdicts, the judge cache): its head and tail.
EXCERPT_HEAD_CHARS = 2000
EXCERPT_TAIL_CHARS = 2000
_INFLATE_STEP = 64 * 1024
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadReply(Exception):
    """The reply cannot be read as a chat completion; ``str()`` says why (no body text)."""


def read_body(chunks: Iterable[bytes], content_encoding: str | None, deadline: float,
              timeout_s: float, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body from its raw ``chunks`` (as sent), inflated as ``content_encoding`` says.

    Never holds more than ``max_bytes`` of body (plus one inflating step): the cap is
    checked on the wire and while inflating, so a gzip bomb stops at the cap. ``deadline``
    (``time.monotonic()``) is checked between chunks.
    """
    inflater = _Inflater(content_encoding)
    body, wire = bytearray(), 0
    for chunk in itertools.chain(chunks, [None]):
        if chunk is not None:
            wire += len(chunk)
            if time.monotonic() > deadline:
                raise BadReply(f"timeout: reply still arriving after {timeout_s:g}s")
            if wire > max_bytes:
                raise BadReply(f"reply body over {max_bytes} bytes")
        for piece in inflater.feed(chunk):
            body += piece
            if len(body) > max_bytes:
                raise BadReply(f"reply body over {max_bytes} bytes once inflated "
                               f"({inflater.encoding}, {wire} bytes sent)")
    return bytes(body)


class _Inflater:
    """Inflates a gzip or deflate stream a step at a time (identity passes through)."""

    def __init__(self, content_encoding: str | None) -> None:
        self.encoding = (content_encoding or "identity").strip().lower() or "identity"
        if self.encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise BadReply(f"unsupported Content-Encoding {self.encoding!r} (asked for "
                           f"{ACCEPT_ENCODING})")
        # gzip: wbits 31; deflate: zlib-wrapped (RFC 9110), else raw as some servers send
        self._stream = zlib.decompressobj(31 if "gzip" in self.encoding else 15)
        self._started = self._raw = False

    def feed(self, chunk: bytes | None) -> Iterator[bytes]:
        """Inflated pieces of ``chunk`` (``None``: the end of the body)."""
        if self.encoding == "identity":
            if chunk:
                yield chunk
            return
        if chunk is None:
            if self._started and not self._stream.eof:
                raise BadReply(f"{self.encoding} body cut short")
            return
        data = chunk
        try:
            while data and not self._stream.eof:
                piece = self._stream.decompress(data, _INFLATE_STEP)
                self._started = True
                data = self._stream.unconsumed_tail
                yield piece
        except zlib.error as error:
            if self.encoding == "deflate" and not self._started and not self._raw:
                self._stream, self._raw = zlib.decompressobj(-15), True
                yield from self.feed(chunk)
                return
            raise BadReply(f"damaged {self.encoding} body ({error})") from None


def body_text(body: bytes, charset: str | None) -> str:
    """The body as text in its declared ``charset`` (UTF-8, JSON's encoding, when none);
    undecodable bytes become U+FFFD. A charset Python does not know is a BadReply."""
    name = charset or "utf-8"
    try:
        codecs.lookup(name)
    except LookupError:
        raise BadReply(f"reply declares an unknown charset {name[:40]!r}") from None
    return body.decode(name, errors="replace")


def checked_text(value: str, field: str) -> str:
    """``value`` unless it holds a lone UTF-16 surrogate (``\\ud83d`` escaped in the JSON
    without its pair): such text cannot be written as UTF-8 anywhere, so it is a BadReply."""
    found = _LONE_SURROGATE.search(value)
    if found:
        raise BadReply(f"reply {field} holds a lone UTF-16 surrogate "
                       f"(U+{ord(found.group()):04X}): not valid Unicode")
    return value


def redirect_reason(status: int, location: str | None) -> str:
    """Why a 3xx reply fails at once: its target host (never the whole URL, which may
    carry a token), and what to do."""
    target = urlsplit(location or "")
    host = target.hostname or ("the same host" if location else "nowhere (no Location)")
    return (f"HTTP {status} redirect to {host}: the base URL must be the server's final "
            f"chat-completions address (redirects are not followed)")


def token_count(value: object) -> int | None:
    """A reply's ``usage`` count: an int in [0, MAX_TOKENS_PER_REPLY], else None (absent or
    implausible, so never priced)."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and 0 <= value <= MAX_TOKENS_PER_REPLY:
        return value
    return None


def stored_excerpt(text: str, head: int = EXCERPT_HEAD_CHARS,
                   tail: int = EXCERPT_TAIL_CHARS) -> str:
    """What is stored of a reply: all of it when short, else its head and its tail (where
    a verdict's Answer line is) around a note of the full size. The verdict is read from
    the whole reply before this."""
    if len(text) <= head + tail:
        return text
    return (f"{text[:head]}\n[... {len(text) - head - tail:,} characters left out: the reply "
            f"was {len(text):,} characters ...]\n{text[-tail:]}")
