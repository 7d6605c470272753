"""Tests for monitor.decode._text: bounded, control-free text from any bytes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.decode._text import MAX_TEXT, text


def test_plain_ascii_is_kept_as_is() -> None:
    assert text(b"DCS-935L udhcp 1.22.1") == "DCS-935L udhcp 1.22.1"


def test_utf8_is_decoded_and_bad_bytes_replaced() -> None:
    assert text("Säule-3".encode()) == "Säule-3"
    assert text(b"ab\xffcd") == "ab\ufffdcd"


def test_controls_never_pass() -> None:
    assert (
        text(b"name\r\nX-Injected: 1\x1b[2J\x7f") == "name\ufffd\ufffdX-Injected: 1\ufffd[2J\ufffd"
    )


def test_length_is_bounded() -> None:
    assert len(text(b"a" * 10_000)) == MAX_TEXT
    assert len(text("é".encode() * 10_000)) == MAX_TEXT
    assert text(b"abcdef", 3) == "abc"


@given(st.binary(max_size=2000), st.integers(1, 300))
def test_any_bytes_give_bounded_control_free_text(raw: bytes, limit: int) -> None:
    out = text(raw, limit)
    assert len(out) <= limit
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in out)
    # the ASCII fast path and the general path agree
    assert (
        out
        == raw[: limit * 4]
        .decode("utf-8", "replace")
        .translate({c: "\ufffd" for c in (*range(0x20), 0x7F)})[:limit]
    )
