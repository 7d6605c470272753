"""Window views for the rule and policy wrappers: whether a fact value shows in a window
profile, and a device as it was at the end of a window."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from monitor.model import Device, WindowProfile

_pass = threading.local()  # .views: (id(device), end) -> (device, view) during one pass


@contextmanager
def one_pass() -> Iterator[None]:
    """While one window is scored no device changes: within this block ``as_of`` builds
    each device's view once and hands the same one to every detector that asks."""
    outer = getattr(_pass, "views", None)
    _pass.views = {}
    try:
        yield
    finally:
        _pass.views = outer


def as_of(device: Device, end: float) -> Device:
    """``device`` with only the facts first seen before ``end``.

    The pipeline accounts a whole batch of frames before it closes the older windows of
    that batch, so the inventory's facts can run ahead of the window being scored; rules
    must judge the device as it was then.
    """
    views: dict[tuple[int, float], tuple[Device, Device]] | None = getattr(_pass, "views", None)
    if views is not None:
        held = views.get((id(device), end))
        if held is not None and held[0] is device:
            return held[1]
    view = _trimmed(device, end)
    if views is not None:
        views[(id(device), end)] = (device, view)  # holding the device keeps its id unique
    return view


def _trimmed(device: Device, end: float) -> Device:
    if device.facts.newest_first_seen() < end:
        return device
    view = copy.copy(device)
    view.facts = device.facts.first_seen_before(end)
    return view


def in_window(profile: WindowProfile, kind: str, value: str) -> bool:
    """True when ``profile`` (one device, one window) shows ``value`` of fact ``kind``."""
    if kind in ("service_offered", "service_used"):
        return value in profile.services or value in profile.facts.get(kind, {})
    if kind == "peer":
        return value in profile.peers
    if kind == "protocol":
        return value in profile.protocols or value in profile.facts.get(kind, {})
    return value in profile.facts.get(kind, {})


class Reported:
    """What a standing-finding detector (rules, policies) already reported, per (device,
    rule): a finding with no new value is a refresh only, until ``repeat_seconds`` passed
    since it was last reported (a daily reminder, not an hourly one)."""

    def __init__(self, repeat_seconds: float) -> None:
        self.repeat_seconds = repeat_seconds
        # rule -> device -> (when last reported, *the values reported): one tuple, not a
        # frozenset in a pair under a (device, rule) key. A finding of one value takes 76
        # bytes that way with its dict entry, where it took 357, and a site of 100,000
        # devices has one or two standing findings on most of them.
        self._seen: dict[str, dict[str, tuple[Any, ...]]] = {}

    def __contains__(self, key: tuple[str, str]) -> bool:
        device, rule = key
        return device in self._seen.get(rule, ())

    def __len__(self) -> int:
        return sum(len(devices) for devices in self._seen.values())

    def refresh_only(self, key: tuple[str, str], values: frozenset[str], now: float) -> bool:
        device, rule = key
        devices = self._seen.get(rule)
        if devices is None:
            devices = self._seen[rule] = {}
        previous = devices.get(device)
        if previous is None:
            devices[device] = (now, *values)
            return False
        last, *reported = previous
        if not values.issubset(reported) or now - last >= self.repeat_seconds:
            devices[device] = (now, *values.union(reported))
            return False
        return True
