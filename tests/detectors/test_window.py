"""Window views (monitor/detectors/_window.py): a device as it was at the end of a window,
built once per device within one scoring pass; what a standing-finding detector reported."""

from __future__ import annotations

import tracemalloc

from monitor.detectors._window import Reported, as_of, one_pass
from monitor.model import Device

END = 1_790_000_060.0


def _device() -> Device:
    device = Device(id="00:00:00:00:00:01", mac="00:00:00:00:00:01", locally_administered=False,
                    vendor=None, first_seen=END - 60, last_seen=END)  # fmt: skip
    device.facts.record("peer", "ext:203.0.113.9", END - 30)
    return device


def test_a_device_as_of_a_window_end_leaves_out_what_was_first_seen_later() -> None:
    device = _device()
    assert as_of(device, END) is device  # nothing newer: the device itself
    device.facts.record("peer", "ext:198.51.100.7", END + 5)
    device.facts.record("service_used", "tcp/23", END)
    view = as_of(device, END)
    assert view.facts == {"peer": {"ext:203.0.113.9": device.facts["peer"]["ext:203.0.113.9"]}}
    assert set(device.facts["peer"]) == {"ext:203.0.113.9", "ext:198.51.100.7"}


def test_within_one_pass_a_view_is_built_once_and_outside_it_every_time() -> None:
    device = _device()
    device.facts.record("peer", "ext:198.51.100.7", END + 5)
    with one_pass():
        first = as_of(device, END)
        assert as_of(device, END) is first
        assert as_of(device, END + 10) is not first  # another window end, another view
    second = as_of(device, END)
    assert second is not first
    device.facts.record("protocol", "telnet", END - 1)
    assert "protocol" in as_of(device, END).facts  # no pass: what changed is seen


DAY = 86_400.0


def test_a_standing_finding_is_reported_again_for_a_new_value_or_after_the_repeat_time() -> None:
    reported = Reported(repeat_seconds=DAY)
    key = ("00:00:00:00:00:01", "rule.telnet")
    assert key not in reported
    assert not reported.refresh_only(key, frozenset({"tcp/23"}), END)  # first: reported
    assert key in reported and ("00:00:00:00:00:02", "rule.telnet") not in reported
    assert (key[0], "rule.ftp") not in reported
    assert reported.refresh_only(key, frozenset({"tcp/23"}), END + 60)  # same: a refresh
    assert not reported.refresh_only(key, frozenset({"tcp/23", "tcp/21"}), END + 120)  # new
    # what was reported before is still known: either value alone is a refresh
    assert reported.refresh_only(key, frozenset({"tcp/21"}), END + 180)
    assert reported.refresh_only(key, frozenset({"tcp/23"}), END + 180)
    # a day after it was last reported, the same finding is reported again (a reminder)
    assert not reported.refresh_only(key, frozenset({"tcp/23"}), END + 120 + DAY)
    assert reported.refresh_only(key, frozenset({"tcp/21"}), END + 180 + DAY)
    assert len(reported) == 1


def test_a_standing_finding_of_one_value_is_kept_in_under_150_bytes() -> None:
    # Most of 100,000 devices have one or two standing findings (cleartext MQTT, an exposed
    # admin port): as a frozenset in a pair under a (device, rule) key, one cost 357 bytes
    # with its dict entry.
    devices = [f"00:00:00:{k >> 16:02x}:{(k >> 8) & 255:02x}:{k & 255:02x}" for k in range(20_000)]
    values = frozenset({"tcp/1883"})
    reported = Reported(repeat_seconds=DAY)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for device in devices:
            reported.refresh_only((device, "rule.cleartext-mqtt"), values, END)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(reported) == len(devices)
    assert held / len(devices) < 150
