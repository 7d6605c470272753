"""Volume against the robust baseline: an exfiltration-sized upload to the internet and a
firmware-sized download are called out at once; a sustained rise is found after a few
windows; the routine ward raises nothing."""

from __future__ import annotations

from pathlib import Path

from tests.detectors.helpers import ENGINE, PUMP, ROUTER, T0, every, run, udp, udp_to, ward, write

LEARN_END = T0 + 150.0
END = T0 + 220.0


def test_upload_of_megabytes_to_the_internet_is_exfiltration(tmp_path: Path) -> None:
    packets = ward(T0, END)
    packets += [udp_to(PUMP, "203.0.113.66", ROUTER, LEARN_END + 11 + k * 0.001, 443, 1400)
                for k in range(2500)]  # fmt: skip
    result = run([write(tmp_path / "exfil.pcap", packets)])
    (event,) = result.of("exfiltration", PUMP[0])
    assert event.observed["tx_bytes"] > 3_000_000
    assert event.observed["external_peers"] == ["ext:203.0.113.66"]
    assert "203.0.113.66" in event.summary and "MB" in event.summary
    assert LEARN_END + 10 <= event.time <= LEARN_END + 20
    # the anomalous window was not learned as normal
    assert result.store.get(PUMP[0]).volumes.stats("tx_bytes").median < 10_000


def test_firmware_sized_download_over_tftp(tmp_path: Path) -> None:
    packets = ward(T0, END)
    packets.append(udp(PUMP, ENGINE, LEARN_END + 11, 40555, 69, 30))
    packets += [udp(ENGINE, PUMP, LEARN_END + 11.01 + k * 0.001, 69, 40555, 1400)
                for k in range(800)]  # fmt: skip
    result = run([write(tmp_path / "fw.pcap", packets)])
    (event,) = result.of("firmware_transfer", PUMP[0])
    assert "udp/69" in event.summary


def test_sustained_rise_is_reported_once_after_three_windows(tmp_path: Path) -> None:
    packets = ward(T0, END)
    # from LEARN_END on, the pump sends 300 extra packets per 5-s window to the engine
    packets += [udp(PUMP, ENGINE, t, 40010, 443, 200) for t in every(LEARN_END, END, 1 / 60)]
    result = run([write(tmp_path / "more.pcap", packets)])
    events = result.of("volume_high", PUMP[0])
    assert len(events) == 1, [e.to_dict() for e in result.events]
    assert events[0].time >= LEARN_END + 3 * 5.0
    assert "tx packets" in events[0].summary


def test_routine_traffic_raises_no_volume_event(tmp_path: Path) -> None:
    result = run([write(tmp_path / "ward.pcap", ward(T0, END))])
    assert result.events == []


def test_sustained_drop_is_reported_too(tmp_path: Path) -> None:
    packets = ward(T0, END)
    # the pump streams 80 packets a second to the engine, then only 4 from LEARN_END on
    packets += [udp(PUMP, ENGINE, t, 40020, 443, 200) for t in every(T0, LEARN_END, 1 / 80)]
    packets += [udp(PUMP, ENGINE, t, 40020, 443, 200) for t in every(LEARN_END, END, 1 / 4)]
    result = run([write(tmp_path / "less.pcap", packets)])
    (event,) = result.of("volume_low", PUMP[0])
    assert event.time >= LEARN_END + 3 * 5.0
    assert "much less" in event.summary
    assert result.of("volume_high") == [] and result.of("silence_app") == []
