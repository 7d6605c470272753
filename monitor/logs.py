"""Structured logs for the daemon: logfmt or JSON lines on stderr, with repeat limiting.

Use ``log(level, msg, **fields)`` (or the stdlib logger ``santinel`` with
``extra={"fields": {...}}``). Promises:

- one line per record, ``ts=... level=... msg=... key=value`` (logfmt) or one JSON object;
- a message repeated more than ``burst`` times within ``interval`` seconds is suppressed; the
  next line of that message that gets through carries ``suppressed=N``, so nothing is lost
  silently and a hostile burst cannot flood the journal;
- callers pass metadata only (device ids, counts, reason codes, file names); this module never
  adds payload content, and exceptions are logged by type, not message.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from typing import IO, Any

LOGGER_NAME = "santinel"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}
_LEVEL_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "error",
}

logger = logging.getLogger(LOGGER_NAME)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _logfmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\\') or any(ord(c) < 32 for c in text):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = {
            "ts": _timestamp(record),
            "level": _LEVEL_NAMES.get(record.levelno, "info"),
            "msg": record.getMessage(),
            **_fields(record),
        }
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in pairs.items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = {
            "ts": _timestamp(record),
            "level": _LEVEL_NAMES.get(record.levelno, "info"),
            "msg": record.getMessage(),
            **_fields(record),
        }
        return json.dumps(pairs, default=str, ensure_ascii=False)


class RepeatLimiter(logging.Filter):
    """Let ``burst`` lines of one message through per ``interval`` seconds, count the rest."""

    def __init__(self, burst: int = 5, interval: float = 60.0, max_keys: int = 1024) -> None:
        super().__init__()
        self.burst = burst
        self.interval = interval
        self.max_keys = max_keys
        self._lock = threading.Lock()
        # key -> [window start (monotonic), lines let through in window, suppressed]
        self._seen: dict[tuple[int, str], list[float]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.levelno, str(record.msg))
        now = time.monotonic()
        with self._lock:
            entry = self._seen.get(key)
            if entry is None or now - entry[0] >= self.interval:
                suppressed = int(entry[2]) if entry is not None else 0
                if len(self._seen) >= self.max_keys and entry is None:
                    self._seen.clear()
                self._seen[key] = [now, 1, 0]
            elif entry[1] < self.burst:
                entry[1] += 1
                suppressed = int(entry[2])
                entry[2] = 0
            else:
                entry[2] += 1
                return False
        if suppressed:
            fields = _fields(record)
            fields["suppressed"] = suppressed
            record.fields = fields
        return True


def setup(fmt: str = "logfmt", level: str = "info", stream: IO[str] | None = None) -> None:
    """(Re)configure the ``santinel`` logger; safe to call again on reload."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    handler.addFilter(RepeatLimiter())
    for old in list(logger.handlers):
        logger.removeHandler(old)
    logger.addHandler(handler)
    logger.setLevel(LEVELS.get(level, logging.INFO))
    logger.propagate = False


def log(level: str, msg: str, **fields: Any) -> None:
    """Log ``msg`` (a fixed text, so repeats are recognised) with metadata ``fields``."""
    logger.log(LEVELS.get(level, logging.INFO), msg, extra={"fields": fields})
