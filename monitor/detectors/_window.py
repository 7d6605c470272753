"""Whether a fact value shows in a window profile (used by the rule and policy wrappers)."""

from __future__ import annotations

from monitor.model import WindowProfile


def in_window(profile: WindowProfile, kind: str, value: str) -> bool:
    """True when ``profile`` (one device, one window) shows ``value`` of fact ``kind``."""
    if kind in ("service_offered", "service_used"):
        return value in profile.services or value in profile.facts.get(kind, {})
    if kind == "peer":
        return value in profile.peers
    if kind == "protocol":
        return value in profile.protocols or value in profile.facts.get(kind, {})
    return value in profile.facts.get(kind, {})
