"""Text from outside (a server's reply, a run's files) made safe to put into Markdown.

Why: a judge server reports the model it answered as, and that name went into the report as
is: a name such as ``# HEADER`` or ``<img src=x onerror=...>`` became a heading or live HTML
in a rendered report. Such text is shown literally instead.
"""

from __future__ import annotations

import re

# Markdown's active characters (inline) and the two that start HTML.
_ACTIVE = re.compile(r"([\\`*_\[\]#|!])")


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown on one line: Markdown syntax backslash-escaped, ``<``
    and ``>`` as HTML entities, line breaks as spaces."""
    flat = " ".join(str(text).split())
    return _ACTIVE.sub(r"\\\1", flat).replace("<", "&lt;").replace(">", "&gt;")
