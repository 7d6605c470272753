"""Structured logs: logfmt and JSON lines, and the repeat limiter."""

from __future__ import annotations

import io
import json

from monitor.logs import RepeatLimiter, log, logger, setup


def test_logfmt_lines_quote_values_that_need_it() -> None:
    out = io.StringIO()
    setup("logfmt", "info", out)
    log("info", "capture file finished", file="ward 3.pcap", packets=120, ok=True)
    line = out.getvalue().strip()
    assert line.startswith("ts=") and line.count("\n") == 0
    assert ' level=info msg="capture file finished" file="ward 3.pcap" packets=120 ' in line
    assert line.endswith("ok=true")


def test_json_lines_parse_and_debug_is_filtered_at_info() -> None:
    out = io.StringIO()
    setup("json", "info", out)
    log("debug", "not shown")
    log("warn", "reload failed", error='x.yml:3: "bad"')
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "warn" and record["msg"] == "reload failed"
    assert record["error"] == 'x.yml:3: "bad"'


def test_a_repeated_message_is_limited_and_the_next_one_through_says_how_many_were_dropped() -> (
    None
):
    out = io.StringIO()
    setup("logfmt", "info", out)
    for i in range(50):
        log("warn", "malformed frame", n=i)
    lines = out.getvalue().splitlines()
    assert len(lines) == 5  # the burst
    limiter = next(f for h in logger.handlers for f in h.filters if isinstance(f, RepeatLimiter))
    # a new interval lets the message through again, saying what was suppressed
    for entry in limiter._seen.values():
        entry[0] -= limiter.interval
    log("warn", "malformed frame", n=99)
    last = out.getvalue().splitlines()[-1]
    assert "n=99" in last and "suppressed=45" in last
    # other messages were never affected
    log("warn", "another message")
    assert out.getvalue().splitlines()[-1].endswith('msg="another message"')
