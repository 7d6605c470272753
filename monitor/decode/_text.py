"""Bounded, safe text from payload bytes, shared by the application decoders.

Promise: every string a decoder keeps went through ``text``: decoded as UTF-8 with
replacement (never raises), control characters replaced, and cut to a fixed length, so a
hostile payload can neither crash a decoder nor blow up memory or a table cell.
"""

from __future__ import annotations

import re

MAX_TEXT = 255
_NOT_PLAIN = re.compile(rb"[^\x20-\x7e]")

# C0 controls and DEL become U+FFFD so a decoded name can never carry a newline or an
# escape sequence into a log line or a terminal.
_CONTROLS = {c: "\ufffd" for c in (*range(0x00, 0x20), 0x7F)}


def text(raw: bytes, limit: int = MAX_TEXT) -> str:
    """Decode ``raw`` as UTF-8 (replacing bad bytes), neutralise controls, keep ``limit`` chars."""
    if not _NOT_PLAIN.search(raw, 0, limit):
        return raw[:limit].decode("ascii")  # the common case: printable ASCII
    return raw[: limit * 4].decode("utf-8", "replace").translate(_CONTROLS)[:limit]
