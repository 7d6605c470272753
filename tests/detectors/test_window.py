"""Window views (monitor/detectors/_window.py): a device as it was at the end of a window,
built once per device within one scoring pass."""

from __future__ import annotations

from monitor.detectors._window import as_of, one_pass
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
