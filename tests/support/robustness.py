"""Checks that a decoder is total: for any bytes it returns its info, ``None`` or raises
``Malformed`` with one of the reasons its module declares in ``REASONS`` — nothing else, ever."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from hypothesis import strategies as st

from monitor.decode import Malformed


def outcome(parse: Callable[[bytes], object], info_type: type, data: bytes) -> str:
    """Run ``parse`` and classify the result; any other exception or type fails the test."""
    try:
        result = parse(data)
    except Malformed as exc:
        # A bounded label set: every reason is declared in the decoder's REASONS.
        reasons = sys.modules[parse.__module__].REASONS
        assert exc.reason in reasons, exc.reason
        return "malformed"
    if result is None:
        return "none"
    assert isinstance(result, info_type), type(result)
    repr(result)  # must not raise either
    return "info"


def check_truncations(
    parse: Callable[[bytes], object], info_type: type, samples: Iterable[bytes]
) -> None:
    """Every prefix of every sample gives an info, ``None`` or ``Malformed``."""
    for sample in samples:
        for end in range(len(sample) + 1):
            outcome(parse, info_type, sample[:end])


def mutated(samples: list[bytes]) -> st.SearchStrategy[bytes]:
    """A valid sample with a few bytes overwritten and possibly cut: reaches deep code paths."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(samples)))
        for _ in range(draw(st.integers(0, 6))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        cut = draw(st.integers(0, len(data)))
        return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)

    return build()
