"""New device: a MAC never seen joins after learning: one event, however long it stays; the
devices present while the sensor learned are not new."""

from __future__ import annotations

from pathlib import Path

from tests.detectors.helpers import (
    LAB_DEMO,
    ROGUE,
    ROUTER,
    T0,
    arp_request,
    every,
    run,
    udp,
    ward,
    write,
)


def test_device_joining_after_learning_is_reported_once(tmp_path: Path) -> None:
    packets = ward(T0, T0 + 200)
    packets += [udp(ROGUE, ROUTER, t, 40000, 53, 60) for t in every(T0 + 160, T0 + 200, 1.0)]
    packets += [arp_request(ROGUE, ROUTER[1], t) for t in every(T0 + 160, T0 + 200, 7.0)]
    result = run([write(tmp_path / "join.pcap", packets)], hold=5.0)
    (event,) = result.of("new_device")
    assert event.device == ROGUE[0]
    assert "Raspberry Pi" in event.summary and ROGUE[1] in event.summary
    assert T0 + 160 <= event.time <= T0 + 170


def test_a_new_device_is_described_as_it_was_when_its_window_ended(tmp_path: Path) -> None:
    """Its first window holds only an address probe; one batch also holds what it sent next,
    from its address: the event says what was known when the window ended, as it would
    frame by frame."""
    packets = ward(T0, T0 + 200)
    packets.append(arp_request((ROGUE[0], "0.0.0.0"), ROGUE[1], T0 + 161))
    packets += [udp(ROGUE, ROUTER, t, 40000, 53, 60) for t in every(T0 + 166, T0 + 200, 1.0)]
    result = run([write(tmp_path / "probe.pcap", packets)], hold=5.0)
    (event,) = result.of("new_device")
    assert event.device == ROGUE[0] and T0 + 160 <= event.time <= T0 + 165
    assert "no address yet" in event.summary and ROGUE[1] not in event.summary
    assert event.observed["ips"] == []
    assert ROGUE[1] in result.analysis.devices[ROGUE[0]].ips


def test_devices_known_while_learning_are_not_new(tmp_path: Path) -> None:
    result = run([write(tmp_path / "ward.pcap", ward(T0, T0 + 200))])
    assert result.of("new_device") == []


def test_lab_demo_has_no_new_device() -> None:
    from tests.detectors.lab import run_lab

    assert (LAB_DEMO / "capture.pcap").is_file()
    assert run_lab(LAB_DEMO).of("new_device") == []
