"""The analysis pipeline: windows on capture time, services, cadence, and results that do not
depend on how the frames were cut into batches."""

from __future__ import annotations

import dataclasses
import gc
import heapq
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.capture import CaptureError, FrameBatch
from monitor.capture.files import open_capture
from monitor.detectors import DetectorConfig, DetectorSuite
from monitor.events import EventBook
from monitor.facts import FactCounts
from monitor.model import WindowProfile
from monitor.pipeline import Analysis, analyze_captures
from monitor.signatures import SignatureLibrary, default_signature_dirs, load_library
from tests.decode.test_dicom import ASSOC_RQ, pdata
from tests.support.packets import BRIDGE, bridge_identified_in_its_second_window, write_capture

REPO = Path(__file__).resolve().parents[1]
MONITOR = "00:09:fb:00:00:01"  # Philips Medizin Systeme
ENGINE = "00:50:56:00:00:02"


def hl7_feed(count: int, interval: float) -> tuple[list[object], list[float]]:
    """A monitor sending one two-segment message every ``interval`` s, each answered by an ACK."""
    packets: list[object] = []
    times: list[float] = []
    syn = (
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / TCP(sport=40001, dport=2575, flags="S")
    )
    synack = (
        Ether(src=ENGINE, dst=MONITOR)
        / IP(src="10.1.0.9", dst="10.1.0.5")
        / TCP(sport=2575, dport=40001, flags="SA")
    )
    packets += [syn, synack]
    times += [0.0, 0.001]
    for i in range(count):
        t = 1.0 + i * interval
        for k in range(2):
            packets.append(
                Ether(src=MONITOR, dst=ENGINE)
                / IP(src="10.1.0.5", dst="10.1.0.9")
                / TCP(sport=40001, dport=2575, flags="PA")
                / (
                    b"\x0bMSH|^~\\&|MON|WARD|ENG|HOSP|||ORU^R01|1|P|2.5\r"
                    if k == 0
                    else b"OBX|1\r\x1c\r"
                )
            )
            times.append(t + k * 0.01)
        packets.append(
            Ether(src=ENGINE, dst=MONITOR)
            / IP(src="10.1.0.9", dst="10.1.0.5")
            / TCP(sport=2575, dport=40001, flags="A")
        )
        times.append(t + 0.05)
    return packets, times


def test_windows_close_on_capture_time_and_add_up_to_the_totals(tmp_path: Path) -> None:
    packets, times = hl7_feed(count=40, interval=3.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    windows: list[list[WindowProfile]] = []
    analysis = analyze_captures(
        [capture], window_seconds=30, on_window=lambda p, a: windows.append(p)
    )
    assert len(windows) >= 4
    monitor_windows = [p for w in windows for p in w if p.device_id == MONITOR]
    assert sum(p.tx_packets for p in monitor_windows) == analysis.devices[MONITOR].tx_packets
    assert sum(p.rx_bytes for p in monitor_windows) == analysis.devices[MONITOR].rx_bytes
    for profile in monitor_windows:
        assert profile.end - profile.start == 30
        assert profile.start % 30 == 0
        # its one flow's packets, counted in the window each was sent or received in (the
        # capture is one batch)
        assert profile.services == {"tcp/2575": profile.tx_packets + profile.rx_packets}


def test_broken_packets_are_counted_by_reason_and_whole_ones_are_not(tmp_path: Path) -> None:
    from scapy.packet import Raw

    whole = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9") / UDP()
    cut = Ether(src=MONITOR, dst=ENGINE, type=0x0800) / Raw(bytes(IP())[:12])
    analysis = Analysis()
    analysis.feed(next(open_capture(write_capture(tmp_path / "whole.pcap", [whole] * 3))))
    assert sum(analysis.decode_errors.values()) == 0
    analysis.feed(next(open_capture(write_capture(tmp_path / "cut.pcap", [whole, cut, cut]))))
    assert analysis.decode_errors == {"truncated_ipv4": 2}
    assert analysis.packets == 6


def test_packet_sizes_fall_in_their_bins_with_each_upper_edge_included(tmp_path: Path) -> None:
    """Bins of the wire length up to 64, 128, 256, 512, 1024 and 1518 bytes, then longer."""
    lengths = [60, 64, 65, 128, 129, 256, 257, 1024, 1518, 1519, 9000]
    packets = [
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=40001, dport=7000)
        / (b"x" * (length - 42))
        for length in lengths
    ]
    assert [len(packet) for packet in packets] == lengths
    capture = write_capture(tmp_path / "sizes.pcap", packets)
    windows: list[list[WindowProfile]] = []
    analyze_captures([capture], window_seconds=30, on_window=lambda p, a: windows.append(p))
    (sender,) = [p for w in windows for p in w if p.device_id == MONITOR]
    assert sender.size_histogram == [2, 2, 2, 1, 1, 1, 2]


def test_message_times_give_the_feed_cadence_not_the_segment_gaps(tmp_path: Path) -> None:
    packets, times = hl7_feed(count=20, interval=3.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    windows: list[list[WindowProfile]] = []
    analyze_captures([capture], window_seconds=1000, on_window=lambda p, a: windows.append(p))
    profile = next(p for w in windows for p in w if p.device_id == MONITOR)
    (times_sent,) = [t for key, t in profile.conversations.items() if key.endswith("|tcp/2575")]
    gaps = np.diff(times_sent)
    assert len(times_sent) == 20
    assert np.allclose(gaps, 3.0, atol=0.01)


def test_devices_and_windows_share_one_key_per_peer_and_service(tmp_path: Path) -> None:
    # A baseline keeps a cadence per conversation key for months: a hundred pumps reporting
    # to one engine hold one string between them, not one each per window they were seen in.
    packets: list[object] = []
    times: list[float] = []
    for window in range(2):
        for n, mac in enumerate((MONITOR, "00:09:fb:00:00:02", "00:09:fb:00:00:03")):
            packets.append(
                Ether(src=mac, dst=ENGINE)
                / IP(src=f"10.1.0.{5 + n}", dst="10.1.0.9")
                / UDP(sport=40001, dport=2575)
                / b"x"
            )
            times.append(window * 60.0 + n)
    capture = write_capture(tmp_path / "feeds.pcap", packets, times=times)
    windows: list[list[WindowProfile]] = []
    analyze_captures([capture], window_seconds=60, on_window=lambda p, a: windows.append(p))
    keys = [
        key
        for profiles in windows
        for profile in profiles
        for key in profile.conversations
        if key.endswith("|udp/2575")
    ]
    assert len(keys) == 6 and len(set(keys)) == 1
    assert len({id(key) for key in keys}) == 1


def test_services_come_from_handshakes_and_hl7_from_content(tmp_path: Path) -> None:
    packets, times = hl7_feed(count=3, interval=2.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    analysis = analyze_captures([capture])
    engine, monitor = analysis.devices[ENGINE], analysis.devices[MONITOR]
    assert set(engine.facts["service_offered"]) == {"tcp/2575"}
    assert set(monitor.facts["service_used"]) == {"tcp/2575"}
    assert "service_offered" not in monitor.facts
    assert "hl7" in monitor.facts["protocol"]
    assert set(monitor.facts["hl7_message_type"]) == {"ORU^R01"}
    assert set(monitor.facts["hl7_sending_application"]) == {"MON^WARD"}


def test_a_port_that_only_resets_is_not_a_service(tmp_path: Path) -> None:
    packets = [
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / TCP(dport=23, flags="S"),
        Ether(src=ENGINE, dst=MONITOR)
        / IP(src="10.1.0.9", dst="10.1.0.5")
        / TCP(sport=23, flags="RA"),
    ]
    analysis = analyze_captures([write_capture(tmp_path / "rst.pcap", packets)])
    assert "service_offered" not in analysis.devices[ENGINE].facts


def _rebatch(capture: Path, size: int) -> list[FrameBatch]:
    return [
        batch.frames(start, min(start + size, len(batch)))
        for batch in open_capture(capture)
        for start in range(0, len(batch), size)
    ]


def _analysed(capture: Path, batch_frames: int) -> Analysis:
    """The capture analysed in batches of ``batch_frames`` frames."""
    analysis = Analysis()
    for batch in _rebatch(capture, batch_frames):
        analysis.feed(batch)
    analysis.finish()
    return analysis


def test_results_do_not_depend_on_how_frames_are_batched(shared_pcaps: Path) -> None:
    """Counters, and each fact's first seen, last seen and count (an address last used, an
    ARP first sent, a service used since its flow began), in one batch as in batches of 7."""
    capture = shared_pcaps / "iot-sentinel/D-LinkCam/Setup-A-1-STA.pcap"
    results = []
    for size in (100_000, 7):
        analysis = _analysed(capture, size)
        results.append(
            {
                d.id: (
                    d.tx_packets,
                    d.rx_bytes,
                    {
                        k: {v: (f.first_seen, f.last_seen, f.count) for v, f in vs.items()}
                        for k, vs in d.facts.items()
                    },
                )
                for d in analysis.devices.values()
            }
        )
        results[-1]["flows started"] = analysis.table_stats().flows_started
    assert results[0] == results[1]


def _judged_in_batches(capture: Path, batch_frames: int) -> dict[str, object]:
    """Every fact (first seen, last seen, count) and counter of every device, every closed
    window profile, the packets per protocol, every event and every baseline, the capture
    judged and learned as the daemon does, in batches of ``batch_frames`` frames."""
    library = load_library(default_signature_dirs())
    suite = DetectorSuite(EventBook(hold_seconds=3600.0), DetectorConfig(60.0))
    store = BaselineStore(BaselineConfig())

    windows: dict[tuple[str, float], dict[str, object]] = {}

    def judge(closed: list[WindowProfile], analysis: Analysis) -> None:
        for profile in closed:
            windows[(profile.device_id, profile.start)] = dataclasses.asdict(profile)
        suite.on_window(closed, analysis, store, learn=True)

    analysis = Analysis(signatures=library, on_window=judge)
    for batch in _rebatch(capture, batch_frames):
        analysis.feed(batch)
    analysis.finish()
    devices = {
        d.id: (
            (d.tx_packets, d.tx_bytes, d.rx_packets, d.rx_bytes, d.device_class),
            {
                kind: {v: (f.first_seen, f.last_seen, f.count) for v, f in values.items()}
                for kind, values in d.facts.items()
            },
        )
        for d in analysis.devices.values()
    }
    return {
        "devices": devices,
        "windows": windows,
        "protocol packets": dict(analysis.protocol_packets),
        "events": [event.to_dict() for event in suite.book.emitted],
        "baselines": {device_id: b.to_dict() for device_id, b in store.baselines.items()},
    }


def test_a_hospital_is_judged_the_same_frame_by_frame_as_in_one_batch(tmp_path: Path) -> None:
    """Four minutes of generated hospital traffic (pumps, monitors, HL7, DICOM, MQTT, TLS,
    DHCP, DNS; servers first seen answering, devices identified after their first window):
    a live capture on a quiet wire reads it a frame at a time, a file 65,536 frames at a
    time, and both must give the same inventory, the same events and the same baselines."""
    capture = tmp_path / "hospital.pcap"
    generator = REPO / "bench" / "generate_traffic.py"
    options = ["--packets", "20000", "--seconds", "240", "--seed", "3"]
    subprocess.run(
        [sys.executable, str(generator), str(capture), *options],
        check=True,
        capture_output=True,
        timeout=300,
    )
    in_one_batch = _judged_in_batches(capture, 65_536)
    events = in_one_batch["events"]
    assert isinstance(events, list) and len(events) > 100
    assert _judged_in_batches(capture, 1) == in_one_batch
    assert _judged_in_batches(capture, 256) == in_one_batch


CORPUS_CHUNKS = 8


def _corpus_chunk(shared_pcaps: Path, chunk: int, chunks: int) -> list[Path]:
    """One of ``chunks`` shares of the shared captures, of about as many bytes each: each
    capture, largest first, joins the share with the fewest bytes so far (the suite's workers
    take a share each, and one share holding the largest captures would be the last to
    finish)."""
    captures = sorted(
        (
            (path.stat().st_size, path.as_posix(), path)
            for path in shared_pcaps.rglob("*")
            if path.suffix in {".pcap", ".pcapng", ".cap"} and "bench" not in path.parts
        ),
        key=lambda entry: (-entry[0], entry[1]),
    )
    shares: list[tuple[int, int, list[Path]]] = [(0, k, []) for k in range(chunks)]
    for size, _, path in captures:
        held, k, paths = heapq.heappop(shares)
        paths.append(path)
        heapq.heappush(shares, (held + size, k, paths))
    return next(paths for _, k, paths in shares if k == chunk)


@pytest.mark.shared
@pytest.mark.parametrize("chunk", range(CORPUS_CHUNKS))
def test_the_shared_captures_are_judged_the_same_frame_by_frame_as_in_one_batch(
    shared_pcaps: Path, chunk: int
) -> None:
    """Each shared capture Santinel reads (but the benchmark's large ones) gives the same
    devices, window profiles, packets per protocol, events and baselines a frame at a time
    and 7 frames at a time (a batch boundary falls between any two frames of a few) as
    65,536 at a time."""
    captures = _corpus_chunk(shared_pcaps, chunk, CORPUS_CHUNKS)
    apart, read = [], 0
    for capture in captures:
        try:
            in_one_batch = _judged_in_batches(capture, 65_536)
        except CaptureError:
            continue  # a link type or format Santinel does not read: nothing to compare
        read += 1
        for size in (1, 7):
            if _judged_in_batches(capture, size) != in_one_batch:
                apart.append((capture.relative_to(shared_pcaps).as_posix(), size))
    assert read > len(captures) // 2
    assert apart == []


def test_a_server_first_seen_answering_offers_its_service_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """The engine is first seen in its SYN-ACK: frame by frame, as in one batch, it offers
    tcp/2575, names the monitor as its peer and is the monitor's peer, although the
    connection began while its address had no device."""
    packets, times = hl7_feed(count=3, interval=2.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        engine, monitor = analysis.devices[ENGINE].facts, analysis.devices[MONITOR].facts
        assert set(engine["service_offered"]) == {"tcp/2575"}, size
        assert set(engine["peer"]) == {MONITOR}, size
        assert ENGINE in monitor["peer"], size
        assert {"tcp", "hl7"} <= set(engine["protocol"]), size
        assert engine["protocol"]["hl7"].count == 3, size


def _profiles_of(capture: Path, batch_frames: int, device_id: str) -> list[dict[str, Any]]:
    """Each closed window profile of ``device_id`` as a dict, the capture analysed in
    batches of ``batch_frames`` frames."""
    found: list[dict[str, Any]] = []

    def keep(closed: list[WindowProfile], _: Analysis) -> None:
        found.extend(dataclasses.asdict(p) for p in closed if p.device_id == device_id)

    analysis = Analysis(on_window=keep)
    for batch in _rebatch(capture, batch_frames):
        analysis.feed(batch)
    analysis.finish()
    return found


TIMES = [0.0, 1.0, 1.001, 1.002, 5.0]  # of _query_answered_by_a_new_server's frames


def _query_answered_by_a_new_server(tmp_path: Path) -> Path:
    """A monitor's report to 10.1.0.9, sent again a second later; the host is first seen in
    its answer, and the report's last part follows right after it (one message with the
    datagram before: the gap is under MESSAGE_GAP_SECONDS); a second report comes later."""
    query = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    answer = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    packets = [
        query / UDP(sport=5000, dport=7001) / b"report 1",
        query / UDP(sport=5000, dport=7001) / b"report 1",
        answer / UDP(sport=7001, dport=5000) / b"ok",
        query / UDP(sport=5000, dport=7001) / b"report 1, end",
        query / UDP(sport=5000, dport=7001) / b"report 2",
    ]
    return write_capture(tmp_path / "report.pcap", packets, times=TIMES)


@pytest.mark.parametrize("exchange", ["hl7 over tcp", "datagrams"])
def test_the_client_of_a_server_first_seen_answering_sees_it_however_the_batches_fall(
    tmp_path: Path, exchange: str
) -> None:
    """Frame by frame, the monitor's first packet went to an address with no device yet.
    Once the server answers, the monitor's facts and window profile are those of one batch:
    no ``ip:10.1.0.9`` peer, its packets and messages counted with the server, and the
    server named its peer from the first packet on."""
    if exchange == "datagrams":
        capture = _query_answered_by_a_new_server(tmp_path)
    else:
        packets, times = hl7_feed(count=3, interval=2.0)
        capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    monitor_facts, counters = [], []
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        monitor = devices[MONITOR]
        facts = monitor.facts
        assert set(facts["peer"]) == {ENGINE}, size
        assert facts["peer"][ENGINE].first_seen == monitor.first_seen, size
        monitor_facts.append(facts)
        counters.append(
            [(d.tx_packets, d.tx_bytes, d.rx_packets, d.rx_bytes) for d in devices.values()]
        )
    assert monitor_facts[0] == monitor_facts[1]
    assert counters[0] == counters[1]
    in_one_batch = _profiles_of(capture, 100_000, MONITOR)
    assert in_one_batch[0]["peers"] == {ENGINE}
    assert all(key.startswith(f"{ENGINE}|") for key in in_one_batch[0]["conversations"])
    assert _profiles_of(capture, 1, MONITOR) == in_one_batch
    assert _profiles_of(capture, 1, ENGINE) == _profiles_of(capture, 100_000, ENGINE)


def _requests_to_a_server_first_seen_answering(tmp_path: Path) -> Path:
    """The monitor's HTTP request reaches 10.1.0.9 before the server ever sent (its SYN, an
    ACK and the request, then the server's ACK); a second connection follows a second
    later."""
    to_server = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    to_monitor = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    request = b"GET /status HTTP/1.1\r\nHost: 10.1.0.9\r\n\r\n"
    packets = [
        to_server / TCP(sport=40000, dport=80, flags="S"),
        to_server / TCP(sport=40000, dport=80, flags="A"),
        to_server / TCP(sport=40000, dport=80, flags="PA") / request,
        to_monitor / TCP(sport=80, dport=40000, flags="A"),
        to_server / TCP(sport=40001, dport=80, flags="S"),
        to_monitor / TCP(sport=80, dport=40001, flags="SA"),
        to_server / TCP(sport=40001, dport=80, flags="PA") / request,
    ]
    times = [0.0, 0.002, 0.003, 0.004, 1.0, 1.001, 1.002]
    return write_capture(tmp_path / "requests.pcap", packets, times=times)


def test_a_client_s_packets_before_its_request_was_recognised_move_to_the_server_it_names(
    tmp_path: Path,
) -> None:
    """Frame by frame, the SYN and ACK counted under ``ip:10.1.0.9`` and tcp, the request
    under it and http; when the server takes its side, all three count with the server, as
    in one batch: the window's peers are the server alone."""
    capture = _requests_to_a_server_first_seen_answering(tmp_path)
    in_one_batch = _profiles_of(capture, 100_000, MONITOR)
    assert in_one_batch[0]["peers"] == {ENGINE}
    assert _profiles_of(capture, 1, MONITOR) == in_one_batch


def test_the_server_taking_its_side_counts_the_packets_before_the_request_as_tcp(
    tmp_path: Path,
) -> None:
    """Frame by frame, the server takes its side of the first connection at its ACK, after
    the request was recognised: of the three packets before, the SYN and the ACK count as
    tcp for it and the request as http, as they do in one batch, where it owned its address
    from the start."""
    capture = _requests_to_a_server_first_seen_answering(tmp_path)
    for size in (100_000, 2, 1):
        profiles = _profiles_of(capture, size, ENGINE)
        assert [p["protocols"] for p in profiles] == [{"tcp": 4, "http": 3}], size


def _request_recognised_in_the_next_window(tmp_path: Path) -> Path:
    """A connection's handshake in one minute's window and its request, recognised as HTTP,
    and the answer in the next (windows start at the minute: 1,700,000,040 s is one)."""
    to_server = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    to_monitor = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    packets = [
        to_server / TCP(sport=40000, dport=80, flags="S"),
        to_monitor / TCP(sport=80, dport=40000, flags="SA"),
        to_server / TCP(sport=40000, dport=80, flags="A"),
        to_server / TCP(sport=40000, dport=80, flags="PA") / b"GET / HTTP/1.1\r\nHost: e\r\n\r\n",
        to_monitor / TCP(sport=80, dport=40000, flags="PA") / b"HTTP/1.1 200 OK\r\n\r\n",
    ]
    times = [39.0, 39.001, 39.002, 40.5, 40.6]
    return write_capture(tmp_path / "request.pcap", packets, times=times)


def test_a_flow_s_packets_before_its_content_was_recognised_count_as_its_transport(
    tmp_path: Path,
) -> None:
    """Frame by frame, a packet counts under what its flow was known as when it passed: the
    handshake as tcp, in the window it closed with, the request and its answer as http.
    So it is in one batch, in the windows' packets per protocol and in the totals."""
    capture = _request_recognised_in_the_next_window(tmp_path)
    for size in (100_000, 2, 1):
        assert _analysed(capture, size).protocol_packets == {"tcp": 3, "http": 2}, size
        for device_id in (MONITOR, ENGINE):
            profiles = _profiles_of(capture, size, device_id)
            protocols = [p["protocols"] for p in profiles]
            assert protocols == [{"tcp": 3}, {"http": 2}], (size, device_id)


def test_a_repeated_question_counts_as_dns_although_only_its_new_answer_was_decoded(
    tmp_path: Path,
) -> None:
    """The monitor asks the same question twice, each from a port of its own; the resolver
    answers each with another address. One batch decodes the second question as the first
    (the same message from the same sender) and the second answer alone: the second
    lookup's flow is DNS from its question on, as frame by frame."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    packets = []
    for i, address in enumerate(("10.1.0.9", "10.1.0.10")):
        port = 40_000 + i
        packets += [
            Ether(src=MONITOR, dst=RESOLVER)
            / IP(src="10.1.0.5", dst="10.1.0.53")
            / UDP(sport=port, dport=53)
            / DNS(id=i, rd=1, qd=DNSQR(qname="engine.ward.example")),
            Ether(src=RESOLVER, dst=MONITOR)
            / IP(src="10.1.0.53", dst="10.1.0.5")
            / UDP(sport=53, dport=port)
            / DNS(
                id=i,
                qr=1,
                qd=DNSQR(qname="engine.ward.example"),
                an=DNSRR(rrname="engine.ward.example", rdata=address),
            ),
        ]
    capture = write_capture(tmp_path / "lookups.pcap", packets)
    for size in (100_000, 1):
        assert _analysed(capture, size).protocol_packets == {"dns": 4}, size


def test_packets_before_a_flow_s_server_was_told_count_under_the_service_guessed_then(
    tmp_path: Path,
) -> None:
    """A capture begun mid-connection: the engine's message to the monitor's port 40001
    comes first, so its service is guessed as tcp/40001 until the engine's SYN-ACK says it
    serves tcp/2575. Frame by frame, what passed before counted under the guess: so it does
    in one batch, in packets per service and in the conversations' messages."""
    to_monitor = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    to_engine = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    packets = [
        to_monitor / TCP(sport=2575, dport=40001, flags="PA") / b"status 1",
        to_engine / TCP(sport=40001, dport=2575, flags="PA") / b"ok 1",
        to_monitor / TCP(sport=2575, dport=40001, flags="SA"),
        to_engine / TCP(sport=40001, dport=2575, flags="PA") / b"ok 2",
    ]
    capture = write_capture(tmp_path / "midway.pcap", packets, times=[0.0, 1.0, 2.0, 3.0])
    in_one_batch = _profiles_of(capture, 100_000, MONITOR)
    assert in_one_batch[0]["services"] == {"tcp/40001": 2, "tcp/2575": 2}
    assert set(in_one_batch[0]["conversations"]) == {f"{ENGINE}|tcp/40001", f"{ENGINE}|tcp/2575"}
    for size in (2, 1):
        assert _profiles_of(capture, size, MONITOR) == in_one_batch, size
        assert _profiles_of(capture, size, ENGINE) == _profiles_of(capture, 100_000, ENGINE)


def test_a_late_flow_s_peer_named_by_address_is_taken_back_when_its_server_answers(
    tmp_path: Path,
) -> None:
    """Capture time goes back: the monitor's request to 10.1.0.9 is older than the window
    open, so it joins that window. Frame by frame, the monitor names ``ip:10.1.0.9`` as its
    peer until the engine answers; the engine then takes its side and the name goes from
    the window it went into, as in one batch, where it was never there."""
    packets = [
        Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9") / UDP() / b"now",
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=50618, dport=69)
        / b"\x00\x01rfc1350.txt\x00octet\x00",
        Ether(src=ENGINE, dst=MONITOR)
        / IP(src="10.1.0.9", dst="10.1.0.5")
        / UDP(sport=3445, dport=50618)
        / b"\x00\x03\x00\x01data",
    ]
    capture = write_capture(tmp_path / "late.pcap", packets, times=[4000.0, 10.0, 10.1])
    for size in (100_000, 1):
        profiles = _profiles_of(capture, size, MONITOR)
        assert len(profiles) == 1, size
        assert "ip:10.1.0.9" not in profiles[0]["facts"]["peer"], size
    assert _profiles_of(capture, 1, MONITOR) == _profiles_of(capture, 100_000, MONITOR)


def test_a_flow_whose_two_sides_get_their_devices_in_one_batch_names_each_by_device(
    tmp_path: Path,
) -> None:
    """A router (it forwards an internet address first) offers 10.1.0.144 a lease from
    10.1.0.1, which its plain traffic does not make its own; neither side of the offer has
    a device. Then the client's ARP makes 10.1.0.144 its own, and the router's ARP 10.1.0.1.
    Frame by frame the client names ``ip:10.1.0.1`` one frame, and the router's ARP takes it
    back; when both ARPs come in one batch of three, so must it, while the name is not yet
    applied. No ``ip:10.1.0.1`` remains, in the client's facts or its window."""
    router, client = "00:b5:6d:06:08:ba", "94:10:3e:cd:37:65"
    offer = _dhcp_reply(router, "10.1.0.1", client, "10.1.0.144", "offer")
    packets = [
        Ether(src=router, dst=client) / IP(src="203.0.113.9", dst="10.1.0.144") / UDP() / b"x",
        offer,
        offer,
        Ether(src=client, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=client, psrc="10.1.0.144", pdst="10.1.0.1"),
        Ether(src=router, dst=client)
        / ARP(op=2, hwsrc=router, psrc="10.1.0.1", hwdst=client, pdst="10.1.0.144"),
        Ether(src=client, dst=router) / IP(src="10.1.0.144", dst="10.1.0.1") / UDP() / b"y",
    ]
    capture = write_capture(tmp_path / "lease.pcap", packets)
    for size in (100_000, 3, 1):
        analysis = _analysed(capture, size)
        assert set(analysis.devices[client].facts["peer"]) == {"ext:203.0.113.9", router}, size
        profiles = _profiles_of(capture, size, client)
        assert set(profiles[0]["facts"]["peer"]) == {"ext:203.0.113.9", router}, size


def test_a_server_first_seen_answering_learns_the_protocol_of_messages_from_then_on(
    tmp_path: Path,
) -> None:
    """The monitor's first request reaches the server before the server ever sent: frame by
    frame the server does not exist yet and learns nothing from it; in one batch it must
    not either. It learns ``protocol: http`` from the next request."""
    capture = _requests_to_a_server_first_seen_answering(tmp_path)
    learned = []
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        http = devices[ENGINE].facts["protocol"]["http"]
        assert (http.first_seen - devices[ENGINE].first_seen, http.count) == (
            pytest.approx(1.002 - 0.004),
            1,
        ), size
        assert devices[MONITOR].facts["protocol"]["http"].count == 2, size
        learned.append(http)
    assert learned[0] == learned[1]


def test_frames_sent_before_a_device_s_first_frame_count_for_nobody_when_it_evicts_another(
    tmp_path: Path,
) -> None:
    """The inventory is full (two devices): the third one's first frame evicts the quietest.
    What was sent to it before still counts for nobody."""
    third = "00:50:56:00:00:03"
    packets = [
        Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9") / UDP() / b"a",
        Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5") / UDP() / b"b",
        Ether(src=MONITOR, dst=third) / IP(src="10.1.0.5", dst="10.1.0.7") / UDP() / b"c",
        Ether(src=third, dst=MONITOR) / IP(src="10.1.0.7", dst="10.1.0.5") / UDP() / b"d",
    ]
    capture = write_capture(tmp_path / "full.pcap", packets)
    for size in (100_000, 1):
        analysis = Analysis(max_devices=2)
        for batch in _rebatch(capture, size):
            analysis.feed(batch)
        analysis.finish()
        assert analysis.inventory.evicted == 1, size
        assert analysis.devices[third].rx_packets == 0, size


@pytest.mark.parametrize("link", ["ethernet", "raw ip"])
def test_frames_sent_to_a_device_before_its_first_frame_are_received_by_nobody(
    tmp_path: Path, link: str
) -> None:
    """The server exists from its answer at 1.001 s, as it does frame by frame: of the four
    frames sent to it, the two before count for nobody, in its counters and its profile
    (known by its MAC on Ethernet, by its address without a link layer)."""
    capture = _query_answered_by_a_new_server(tmp_path)
    server_id = ENGINE
    if link == "raw ip":
        capture = write_capture(capture, [p[IP] for p in rdpcap(str(capture))], times=TIMES)
        server_id = "ip:10.1.0.9"
    first_seen = []
    for size in (100_000, 2, 1):
        server = _analysed(capture, size).devices[server_id]
        assert (server.rx_packets, server.tx_packets) == (2, 1), size
        assert [p["rx_packets"] for p in _profiles_of(capture, size, server_id)] == [2], size
        first_seen.append(server.first_seen)
    assert first_seen[0] == first_seen[1] == first_seen[2]


def test_an_hl7_feed_s_messages_count_in_the_window_each_was_sent_in_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """A feed says the same thing all day, so a batch decodes each routing once and counts
    its repeats: per window, or a batch spanning windows put them all in the first."""
    packets, times = hl7_feed(count=6, interval=20.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    in_one_batch = _profiles_of(capture, 100_000, MONITOR)
    assert len(in_one_batch) >= 2
    counts = [p["facts"]["hl7_message_type"]["ORU^R01"] for p in in_one_batch]
    assert sum(counts) == 6 and max(counts) < 6
    assert _profiles_of(capture, 1, MONITOR) == in_one_batch


def test_conversations_renamed_before_the_keys_are_compacted_stay_as_they_were(
    tmp_path: Path,
) -> None:
    """Interning the live flows' keys anew (every sweep may) renumbers the conversations: a
    rename recorded before it was applied then, and must not touch the new numbers."""
    capture = _query_answered_by_a_new_server(tmp_path)
    found: list[dict[str, list[float]]] = []

    def keep(closed: list[WindowProfile], _: Analysis) -> None:
        found.extend(p.conversations for p in closed if p.device_id == MONITOR)

    analysis = Analysis(on_window=keep)
    batches = _rebatch(capture, 1)
    for batch in batches[:3]:  # the answer: the monitor's conversation is renamed
        analysis.feed(batch)
    analysis._compact_keys()
    for batch in batches[3:]:
        analysis.feed(batch)
    analysis.finish()
    assert found == [_profiles_of(capture, 100_000, MONITOR)[0]["conversations"]]


@pytest.mark.parametrize("broker", ["10.1.0.9", "203.0.113.9"])
def test_a_client_first_seen_after_its_server_answered_uses_the_service_from_the_answer(
    tmp_path: Path, broker: str
) -> None:
    """The capture begins with the broker's SYN-ACK (on the site, or on the internet behind
    the router): it tells the service (tcp/1883) before the client ever sent. Frame by
    frame, the client takes its side of the flow at its first frame; it uses tcp/1883 from
    the SYN-ACK on, as in one batch."""
    to_client = Ether(src=ENGINE, dst=MONITOR) / IP(src=broker, dst="10.1.0.5")
    to_broker = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst=broker)
    packets = [
        to_client / TCP(sport=1883, dport=41892, flags="SA"),
        to_broker / TCP(sport=41892, dport=1883, flags="PA") / b"hello",
        to_client / TCP(sport=1883, dport=41892, flags="PA") / b"ok",
    ]
    capture = write_capture(tmp_path / "broker.pcap", packets, times=[0.0, 0.003, 0.1])
    facts = []
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        used = devices[MONITOR].facts["service_used"]["tcp/1883"]
        assert (used.first_seen, used.count) == (devices[ENGINE].first_seen, 1), size
        if broker == "10.1.0.9":
            assert set(devices[ENGINE].facts["service_offered"]) == {"tcp/1883"}, size
        facts.append({d.id: d.facts for d in devices.values()})
    assert facts[0] == facts[1]


def test_a_router_found_out_mid_batch_keeps_the_flows_it_began_before_as_frame_by_frame(
    tmp_path: Path,
) -> None:
    """A router offers an address from 10.1.0.1, talks to the monitor from it, then forwards
    an answer from 8.8.8.8: from that frame on 10.1.0.1 is not its own (a router forwards
    other hosts' traffic). Frame by frame it began the first two flows with that address;
    in one batch too: it keeps the DHCP server's facts, and the monitor names it as the
    first flow's peer and ``ip:10.1.0.1`` from then on."""
    router = "00:1a:1e:00:00:01"
    monitor = Ether(src=MONITOR, dst=router)
    from_router = Ether(src=router, dst=MONITOR)
    packets = [
        Ether(src=MONITOR, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=2, hwsrc=MONITOR, psrc="10.1.0.5", pdst="10.1.0.5"),
        Ether(src=router, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.1.0.1", dst="255.255.255.255")
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr="10.1.0.9", chaddr=bytes.fromhex("020000000009"))
        / DHCP(options=[("message-type", "offer"), "end"]),
        from_router / IP(src="10.1.0.1", dst="10.1.0.5") / UDP(sport=7000, dport=7001) / b"a",
        from_router / IP(src="8.8.8.8", dst="10.1.0.5") / UDP(sport=53, dport=40001) / b"b",
        from_router / IP(src="10.1.0.1", dst="10.1.0.5") / UDP(sport=7002, dport=7003) / b"c",
        monitor / IP(src="10.1.0.5", dst="10.1.0.1") / UDP(sport=7003, dport=7002) / b"d",
    ]
    capture = write_capture(tmp_path / "router.pcap", packets, times=[0, 1, 2, 3, 4, 5])
    facts = []
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        assert router in analysis.inventory.routers, size
        seen = {d.id: d.facts for d in analysis.devices.values()}
        assert {"dhcp", "udp"} <= set(seen[router]["protocol"]), size
        assert "udp/67" in seen[router]["service_offered"], size
        assert not seen[router].get("ip"), size
        assert set(seen[MONITOR]["peer"]) == {router, "ext:8.8.8.8", "ip:10.1.0.1"}, size
        facts.append(seen)
    assert facts[0] == facts[1]


def test_a_dhcp_server_s_unicast_answer_makes_it_the_server_not_its_client(
    tmp_path: Path,
) -> None:
    """A DHCP server's acknowledgement to a client's address, then the client's renewal from
    port 68: the server offers udp/67 and the client uses it, whoever sent first."""
    server, client = "10.1.0.1", "10.1.0.5"
    packets = [
        Ether(src=ENGINE, dst=MONITOR) / IP(src=server, dst=client) / UDP(sport=67, dport=68),
        Ether(src=MONITOR, dst=ENGINE) / IP(src=client, dst=server) / UDP(sport=68, dport=67),
    ]
    capture = write_capture(tmp_path / "renewal.pcap", packets, times=[0.0, 1.0])
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        assert set(devices[ENGINE].facts["service_offered"]) == {"udp/67"}, size
        assert set(devices[MONITOR].facts["service_used"]) == {"udp/67"}, size
        assert "service_offered" not in devices[MONITOR].facts, size


def _dhcp_reply(server: str, server_ip: str, client: str, address: str, kind: str) -> object:
    """A DHCP server's ``kind`` (offer, ack) of ``address`` to ``client``, sent to it."""
    return (
        Ether(src=server, dst=client)
        / IP(src=server_ip, dst=address)
        / UDP(sport=67, dport=68)
        / BOOTP(op=2, yiaddr=address, chaddr=bytes.fromhex(client.replace(":", "")))
        / DHCP(options=[("message-type", kind), "end"])
    )


def _dhcp_discover(client: str) -> object:
    """``client``'s DHCP discover, broadcast from 0.0.0.0."""
    return (
        Ether(src=client, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(op=1, chaddr=bytes.fromhex(client.replace(":", "")))
        / DHCP(options=[("message-type", "discover"), "end"])
    )


def _lease_to_monitor() -> list[object]:
    """A DHCP server's acknowledgement of 10.1.0.5 to the monitor, then the monitor's first
    ARP announcement from it."""
    ack = _dhcp_reply(ENGINE, "10.1.0.1", MONITOR, "10.1.0.5", "ack")
    announce = Ether(src=MONITOR, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=MONITOR, psrc="10.1.0.5", pdst="10.1.0.5"
    )
    return [ack, announce]


def test_a_dhcp_answer_to_a_new_address_counts_for_the_client_that_takes_it(
    tmp_path: Path,
) -> None:
    """The server acknowledges 10.1.0.5 before its client ever sent from it; the client's
    first ARP from 10.1.0.5 comes in the next window. Its profile shows the DHCP exchange
    (how a baseline learns that it uses DHCP) and the flow as one it began, frame by frame as
    in one batch; the acknowledgement came before its first frame and counts as received by
    nobody."""
    # windows start at multiples of 60 s: 39 s and 41 s after the start are either side of one
    capture = write_capture(tmp_path / "lease.pcap", _lease_to_monitor(), times=[39.0, 41.0])
    for size in (100_000, 1):
        assert "dhcp" in _profiled_protocols(capture, size, MONITOR), size
    first_window = _profiles_of(capture, 100_000, MONITOR)[0]
    assert (first_window["rx_packets"], first_window["flows_started"]) == (0, 1)
    assert _profiles_of(capture, 1, MONITOR) == _profiles_of(capture, 100_000, MONITOR)


def test_an_answer_to_a_device_seen_before_its_address_counts_once(tmp_path: Path) -> None:
    """The client asked for an address before the server's answer to it: the answer, sent to
    its MAC, counted as received then, and not again when its address becomes its own."""
    discover = _dhcp_discover(MONITOR)
    packets = [discover, *_lease_to_monitor()]
    capture = write_capture(tmp_path / "lease.pcap", packets, times=[38.0, 39.0, 41.0])
    for size in (100_000, 1):
        assert _analysed(capture, size).devices[MONITOR].rx_packets == 1, size
    assert _profiles_of(capture, 1, MONITOR) == _profiles_of(capture, 100_000, MONITOR)


def test_a_dhcp_offer_of_an_address_another_device_last_had_counts_for_the_client(
    tmp_path: Path,
) -> None:
    """A workstation announced 10.1.0.5 and left. An hour later the server offers that
    address to the monitor, sent to the monitor's MAC; the monitor's ARP then makes it its
    own. Frame by frame the address was still the workstation's when the offer came, in one
    batch already the monitor's: either way the offer is the monitor's, never the
    workstation's (gone an hour), and both give the same windows."""
    workstation = "00:50:56:00:00:07"
    discover = _dhcp_discover(MONITOR)
    left = Ether(src=workstation, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=workstation, psrc="10.1.0.5", pdst="10.1.0.5"
    )
    offer = _dhcp_reply(ENGINE, "10.1.0.1", MONITOR, "10.1.0.5", "offer")
    announce = Ether(src=MONITOR, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=2, hwsrc=MONITOR, psrc="10.1.0.5", pdst="10.1.0.5"
    )
    packets = [left, discover, offer, announce]
    capture = write_capture(tmp_path / "lease.pcap", packets, times=[0.0, 3600.0, 3601.0, 3602.0])
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        assert "peer" not in devices[workstation].facts, size
        assert set(devices[MONITOR].facts["peer"]) == {ENGINE}, size
        assert set(devices[ENGINE].facts["peer"]) == {MONITOR}, size
    for device in (MONITOR, workstation, ENGINE):
        assert _profiles_of(capture, 1, device) == _profiles_of(capture, 100_000, device)


WORKSTATION = "00:50:56:00:00:07"


def _takeover(tmp_path: Path, announced_first: bool) -> Path:
    """The engine's datagram to 10.1.0.5 at the workstation's MAC, the workstation's ARP
    announcement of 10.1.0.5 and the monitor's, which takes it over, in that order or with
    the workstation's announcement first, a second apart."""
    datagram = (
        Ether(src=ENGINE, dst=WORKSTATION)
        / IP(src="10.1.0.1", dst="10.1.0.5")
        / UDP(sport=40000, dport=9000)
        / b"x"
    )
    claims = [
        Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=2, hwsrc=mac, psrc="10.1.0.5", pdst="10.1.0.5")
        for mac in (WORKSTATION, MONITOR)
    ]
    packets = [claims[0], datagram, claims[1]] if announced_first else [datagram, *claims]
    return write_capture(tmp_path / "takeover.pcap", packets, times=[10.0, 11.0, 12.0])


@pytest.mark.parametrize("announced_first", [True, False], ids=["the workstation's", "nobody's"])
def test_a_flow_begun_to_an_address_before_another_device_took_it_over_is_its_owner_then(
    tmp_path: Path, announced_first: bool
) -> None:
    """The engine sends a datagram to the workstation's MAC at 10.1.0.5, before the
    monitor's ARP takes 10.1.0.5 over: frame by frame as in one batch holding the takeover,
    the flow is the workstation's. So it is when nobody owned the address when the datagram
    came: frame by frame the workstation takes the flow's side at its ARP and keeps it, and
    one batch must not give it to the address's last owner."""
    capture = _takeover(tmp_path, announced_first)
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        assert set(devices[ENGINE].facts["peer"]) == {WORKSTATION}, size
        assert set(devices[WORKSTATION].facts["peer"]) == {ENGINE}, size
        assert "peer" not in devices[MONITOR].facts, size
    for device in (MONITOR, WORKSTATION, ENGINE):
        assert _profiles_of(capture, 1, device) == _profiles_of(capture, 100_000, device)


THIRD, ROUTER = "00:50:56:00:00:08", "00:1a:1e:00:00:01"


def _claims_in_turn(tmp_path: Path, claims: list[tuple[str, str]]) -> Path:
    """10.1.0.5 claimed in turn by each (how, MAC) of ``claims``: an ARP announcement, or
    plain traffic to the engine from that address (a static address set on two devices);
    or ("forwards", router): the router forwards an answer from 8.8.8.8 to the engine,
    which shows it to be a router and claims nothing. After each, the engine sends a
    datagram to 10.1.0.5 at that MAC. Each claim and datagram is a flow of its own, a
    second apart."""
    packets: list[object] = []
    for turn, (how, mac) in enumerate(claims):
        if how == "arp":
            packets.append(
                Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
                / ARP(op=2, hwsrc=mac, psrc="10.1.0.5", pdst="10.1.0.5")
            )
        else:
            source = "8.8.8.8" if how == "forwards" else "10.1.0.5"
            packets.append(
                Ether(src=mac, dst=ENGINE)
                / IP(src=source, dst="10.1.0.1")
                / UDP(sport=5000 + turn, dport=7000)
                / b"c"
            )
        packets.append(
            Ether(src=ENGINE, dst=mac)
            / IP(src="10.1.0.1", dst="10.1.0.5")
            / UDP(sport=40000, dport=9000 + turn)
            / b"x"
        )
    times = [float(i) for i in range(len(packets))]
    return write_capture(tmp_path / "claims.pcap", packets, times=times)


@pytest.mark.parametrize(
    "claims",
    [
        [("arp", WORKSTATION), ("arp", MONITOR), ("arp", WORKSTATION)],
        [("traffic", WORKSTATION), ("traffic", MONITOR), ("traffic", WORKSTATION)],
        [("arp", WORKSTATION), ("traffic", MONITOR), ("arp", WORKSTATION)],
        [("traffic", MONITOR), ("arp", WORKSTATION), ("traffic", MONITOR)],
        [("arp", WORKSTATION), ("arp", MONITOR), ("arp", THIRD), ("arp", MONITOR)],
        [("arp", WORKSTATION), ("arp", MONITOR), ("forwards", ROUTER), ("arp", WORKSTATION)],
    ],
    ids=[
        "by ARP",
        "by traffic",
        "ARP, traffic, ARP",
        "traffic, ARP, traffic",
        "three devices",
        "a router found out between",
    ],
)
def test_an_address_claimed_in_turn_is_each_claimant_s_until_the_next_in_one_batch_too(
    tmp_path: Path, claims: list[tuple[str, str]]
) -> None:
    """Two devices set to one static address take it from each other, back and forth. Frame
    by frame each claim makes the address its sender's until the next: the datagram sent
    to it after a claim is the claimant's, and the last claimant keeps it. One batch holds
    every claim and must give the same devices, window profiles, events and baselines,
    not leave the address with the last device to take it first. A router found out
    meanwhile takes nothing from the claimant then."""
    capture = _claims_in_turn(tmp_path, claims)
    engine_names: dict[str, int] = {}  # how the engine names a peer -> flows with it
    owner = ""
    for how, mac in claims:
        if how == "forwards":
            engine_names["ext:8.8.8.8"] = 1
        else:
            owner = mac
            engine_names[mac] = engine_names.get(mac, 0) + (how == "traffic")
        engine_names[owner] += 1  # the datagram to 10.1.0.5 that follows
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        assert analysis.inventory.ip_owner["10.1.0.5"] == owner, size
        peers = analysis.devices[ENGINE].facts["peer"]
        assert {name: peers[name].count for name in peers} == engine_names, size
    assert _judged_in_batches(capture, 1) == _judged_in_batches(capture, 100_000)


def test_a_router_found_out_keeps_the_address_its_arp_took_in_the_same_batch(
    tmp_path: Path,
) -> None:
    """The workstation announces 10.1.0.1, the router's ARP takes it over, the router then
    forwards an answer from 8.8.8.8 (a router: its traffic addresses are not its own), and
    the engine sends to 10.1.0.1. An address an ARP gave the router stays its own, frame by
    frame as in one batch: the engine's datagram is to the router."""
    packets = [
        *(
            Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
            / ARP(op=2, hwsrc=mac, psrc="10.1.0.1", pdst="10.1.0.1")
            for mac in (WORKSTATION, ROUTER)
        ),
        Ether(src=ROUTER, dst=MONITOR) / IP(src="8.8.8.8", dst="10.1.0.5") / UDP() / b"a",
        Ether(src=ENGINE, dst=ROUTER) / IP(src="10.1.0.9", dst="10.1.0.1") / UDP() / b"b",
    ]
    capture = write_capture(tmp_path / "router.pcap", packets, times=[0, 1, 2, 3])
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        assert ROUTER in analysis.inventory.routers, size
        assert analysis.inventory.ip_owner["10.1.0.1"] == ROUTER, size
        assert set(analysis.devices[ENGINE].facts["peer"]) == {ROUTER}, size
    one_batch, one_by_one = _facts_in_batches_of(capture, (100_000, 1))
    assert one_batch == one_by_one


def _profiled_protocols(capture: Path, batch_frames: int, device_id: str) -> set[str]:
    """The protocols in the window profiles of ``device_id``, the capture analysed in batches
    of ``batch_frames`` frames."""
    return {name for p in _profiles_of(capture, batch_frames, device_id) for name in p["protocols"]}


def test_a_flow_waiting_for_its_address_s_owner_is_forgotten_once_it_ends(
    tmp_path: Path,
) -> None:
    """Flows to an address no device sends from wait for one; the first sweep after they
    end lets them go, so that a host that never answers costs nothing for long."""
    to_silent = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.77")
    packets = [to_silent / UDP(sport=port, dport=161) for port in (5000, 5001)]
    packets.append(Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9") / UDP())
    capture = write_capture(tmp_path / "silent.pcap", packets, times=[0.0, 1.0, 900.0])
    analysis = Analysis()
    batches = _rebatch(capture, 1)
    for batch in batches[:2]:
        analysis.feed(batch)
    assert len(analysis._unowned_sides["10.1.0.77"]) == 2
    analysis.feed(batches[2])  # past both flows' idle timeout: swept
    assert "10.1.0.77" not in analysis._unowned_sides


def test_without_link_layer_a_server_first_seen_answering_offers_its_service(
    tmp_path: Path,
) -> None:
    """On a capture of bare IP packets (an address is a device), as on Ethernet."""
    to_engine = IP(src="10.1.0.5", dst="10.1.0.9")
    to_monitor = IP(src="10.1.0.9", dst="10.1.0.5")
    packets = [
        to_engine / TCP(sport=40001, dport=2575, flags="S"),
        to_monitor / TCP(sport=2575, dport=40001, flags="SA"),
        to_engine / TCP(sport=40001, dport=2575, flags="A"),
    ]
    capture = write_capture(tmp_path / "raw.pcap", packets)
    for size in (100_000, 1):
        devices = _analysed(capture, size).devices
        assert set(devices["ip:10.1.0.9"].facts["service_offered"]) == {"tcp/2575"}, size
        assert "ip:10.1.0.9" in devices["ip:10.1.0.5"].facts["peer"], size


MODALITY, PACS = "00:50:56:00:00:20", "00:50:56:00:00:30"


def test_image_fragments_after_an_association_count_alike_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """Image fragments that follow an A-ASSOCIATE-RQ within the flow's first payloads are
    not decoded, whether the batch that recognised the association holds them or not: the
    association alone counts as a DICOM sighting."""
    to_pacs = Ether(src=MODALITY, dst=PACS) / IP(src="10.1.0.20", dst="10.1.0.30")
    to_modality = Ether(src=PACS, dst=MODALITY) / IP(src="10.1.0.30", dst="10.1.0.20")
    fragment = pdata((1, 0x00, b"\x00" * 40))  # a dataset fragment, not the last
    packets = [
        to_pacs / UDP(sport=5000, dport=5000),  # both known before the association
        to_modality / UDP(sport=5000, dport=5000),
        to_pacs / TCP(sport=40000, dport=104, flags="S"),
        to_modality / TCP(sport=104, dport=40000, flags="SA"),
        to_pacs / TCP(sport=40000, dport=104, flags="PA") / ASSOC_RQ,
        *(to_pacs / TCP(sport=40000, dport=104, flags="PA") / fragment for _ in range(3)),
    ]
    capture = write_capture(tmp_path / "store.pcap", packets)
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        for device in (MODALITY, PACS):
            assert analysis.devices[device].facts["protocol"]["dicom"].count == 1, size


def _facts_in_batches_of(capture: Path, sizes: tuple[int, ...]) -> list[dict[object, object]]:
    out = []
    for size in sizes:
        analysis = _analysed(capture, size)
        out.append(
            {
                (d.id, k, v): (f.first_seen, f.last_seen, f.count)
                for d in analysis.devices.values()
                for k, vs in d.facts.items()
                for v, f in vs.items()
            }
        )
    return out


def test_a_device_s_arp_and_addresses_keep_their_first_and_last_times_in_one_batch(
    tmp_path: Path,
) -> None:
    from scapy.layers.l2 import ARP

    packets: list[object] = []
    times: list[float] = []
    for t in (10.0, 70.0, 130.0):  # three windows
        packets.append(
            Ether(src=MONITOR, dst="ff:ff:ff:ff:ff:ff")
            / ARP(hwsrc=MONITOR, psrc="10.1.0.5", pdst="10.1.0.9")
        )
        packets.append(
            Ether(src=MONITOR, dst=ENGINE)
            / IP(src="10.1.0.5", dst="10.1.0.9")
            / UDP(sport=5000, dport=5000)
        )
        times += [t, t + 5.0]
    capture = write_capture(tmp_path / "arp.pcap", packets, times=times)
    one_batch, one_by_one = _facts_in_batches_of(capture, (100_000, 1))
    assert one_batch == one_by_one
    start = 1_700_000_000.0  # write_capture's
    assert one_batch[(MONITOR, "protocol", "arp")] == (start + 10, start + 130, 3)
    assert one_batch[(MONITOR, "ip", "10.1.0.5")] == (start + 10, start + 135, 6)


def test_a_flow_silent_past_its_idle_timeout_ends_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """UDP flows end after 300 s of silence, TCP flows after 600 s: the next packet starts
    another flow, also when both are in one batch."""
    udp = (
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=5000, dport=5000)
    )
    tcp = (
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / TCP(sport=40000, dport=2575, flags="A")
    )
    packets = [packet.copy() for packet in (udp, tcp, udp, tcp, udp, tcp)]
    times = [0.0, 0.5, 299.0, 500.0, 700.0, 1200.0]  # UDP: 299 s, then 401 s of silence
    capture = write_capture(tmp_path / "idle.pcap", packets, times=times)
    for size in (100_000, 3, 1):
        analysis = _analysed(capture, size)
        assert analysis.table_stats().flows_started == 4, size  # UDP twice, TCP twice
        (peer,) = analysis.devices[MONITOR].facts["peer"].values()  # one per flow started
        assert peer.count == 4


def test_a_flow_past_its_idle_timeout_ends_also_between_two_sweeps(tmp_path: Path) -> None:
    """A sweep at 295 s finds the flow of 0 s not yet idle, and the next is due at 305 s:
    its packet at 301 s starts another flow all the same."""
    flows = [
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=port, dport=5000)
        for port in (5000, 6000, 5000)
    ]
    capture = write_capture(tmp_path / "between.pcap", flows, times=[0.0, 295.0, 301.0])
    for size in (100_000, 1):
        assert _analysed(capture, size).table_stats().flows_started == 3, size


def test_many_silences_in_one_batch_are_cut_without_recursion(tmp_path: Path) -> None:
    """A hostile or sparse capture: every packet of one flow after a silence longer than
    its timeout, all in one batch."""
    udp = (
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=5000, dport=5000)
    )
    count = 1500  # more than Python's recursion limit of 1000
    capture = write_capture(
        tmp_path / "sparse.pcap",
        [udp.copy() for _ in range(count)],
        times=[301.0 * i for i in range(count)],
    )
    analysis = _analysed(capture, 100_000)
    assert analysis.table_stats().flows_started == count
    assert analysis.packets == count


def test_dns_answers_name_addresses_in_capture_order_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """A resolver answers X, X again, then Y, then X again for one address: each flow is to
    the name of the last answer before it, although the repeats of X decode with the first
    (and are applied in capture order with the others)."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    resolver = "00:50:56:00:00:53"

    def answer(i: int, name: str) -> object:
        return (
            Ether(src=resolver, dst=MONITOR)
            / IP(src="10.1.0.53", dst="10.1.0.5")
            / UDP(sport=53, dport=40_000 + i)
            / DNS(id=i, qr=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata="10.1.0.9"))
        )

    def call(port: int) -> object:
        return (
            Ether(src=MONITOR, dst=ENGINE)
            / IP(src="10.1.0.5", dst="10.1.0.9")
            / TCP(sport=port, dport=443, flags="S")
        )

    packets = [call(50_000)]  # the monitor and the engine known before the first answer
    for i, name in enumerate(("x", "x", "y", "x")):
        packets += [answer(i, f"{name}.ward.example"), call(50_001 + i)]
    capture = write_capture(tmp_path / "names.pcap", packets, times=list(range(9)))
    one_batch, one_by_one = _facts_in_batches_of(capture, (100_000, 1))
    assert one_batch == one_by_one
    start = 1_700_000_000.0  # write_capture's
    assert one_batch[(MONITOR, "peer_name", "x.ward.example")] == (start + 2, start + 8, 3)
    assert one_batch[(MONITOR, "peer_name", "y.ward.example")] == (start + 6, start + 6, 1)


def test_facts_noted_in_a_batch_that_spans_windows_go_to_each_sighting_s_window(
    tmp_path: Path,
) -> None:
    """One batch, two 30-s windows: the flow started in each, its peer, its protocol and the
    service its reply showed are in that window's profile, as when the packets came one by
    one."""
    from scapy.layers.l2 import ARP

    out, back = Ether(src=MONITOR, dst=ENGINE), Ether(src=ENGINE, dst=MONITOR)
    # the router first announces itself, so that it receives what is sent to it (a device
    # receives nothing before its first frame: see docs/performance.md)
    packets = [Ether(src=ENGINE, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.1.0.1")]
    for peer in ("203.0.113.7", "203.0.113.8"):
        packets += [
            out / IP(src="10.1.0.5", dst=peer) / UDP(sport=5000, dport=9),
            back / IP(src=peer, dst="10.1.0.5") / UDP(sport=9, dport=5000),
        ]
    capture = write_capture(tmp_path / "two.pcap", packets, times=[0.0, 10.0, 11.0, 40.0, 41.0])
    one_batch, one_by_one = (_window_summary(capture, size) for size in (100_000, 1))
    assert one_batch == one_by_one
    windows, _ = one_batch
    start = 1_700_000_000.0  # write_capture's, 10 s before a window starts
    used = "service_used"
    seen = {w[1] - start: (w[8], w[9]) for w in windows if w[0] == MONITOR}  # facts, flows
    assert seen == {
        10.0: ({"peer": {"ext:203.0.113.7": 1}, "protocol": {"udp": 1}, used: {"udp/9": 1}}, 1),
        40.0: ({"peer": {"ext:203.0.113.8": 1}, "protocol": {"udp": 1}, used: {"udp/9": 1}}, 1),
    }


def test_datagrams_to_a_group_count_as_the_service_the_sender_uses(tmp_path: Path) -> None:
    packets = [
        Ether(src=MONITOR, dst="01:00:5e:7f:ff:fa")
        / IP(src="10.1.0.5", dst="239.255.255.250")
        / UDP(sport=3702, dport=3702)
        / b"<Probe/>",
        Ether(src=MONITOR, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="10.1.0.5", dst="255.255.255.255")
        / UDP(sport=24005, dport=24005)
        / b"x",
    ]
    analysis = analyze_captures([write_capture(tmp_path / "group.pcap", packets)])
    assert set(analysis.devices[MONITOR].facts["service_used"]) == {"udp/3702", "udp/24005"}


def test_cadence_survives_a_snaplen_that_cuts_the_payload_off(tmp_path: Path) -> None:
    packets, times = hl7_feed(count=12, interval=3.0)
    full = write_capture(tmp_path / "full.pcap", packets, times=times)
    cut = tmp_path / "cut.pcap"
    import subprocess

    subprocess.run(["editcap", "-s", "54", str(full), str(cut)], check=True)
    windows: list[list[WindowProfile]] = []
    analyze_captures([cut], window_seconds=1000, on_window=lambda p, a: windows.append(p))
    profile = next(p for w in windows for p in w if p.device_id == MONITOR)
    (times_sent,) = [t for key, t in profile.conversations.items() if key.endswith("|tcp/2575")]
    assert len(times_sent) == 12
    assert np.allclose(np.diff(times_sent), 3.0, atol=0.01)


def _udp_spray(count: int, start_time: float = 0.0) -> tuple[list[object], list[float]]:
    """One chatty monitor sending one datagram to each of ``count`` ports of the engine."""
    packets: list[object] = [
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst="10.1.0.9")
        / UDP(sport=5000, dport=10_000 + i)
        / b"x"
        for i in range(count)
    ]
    return packets, [start_time + i * 0.001 for i in range(count)]


def test_flow_table_stays_bounded_and_counts_what_it_evicted(tmp_path: Path) -> None:
    packets, times = _udp_spray(300)
    capture = write_capture(tmp_path / "spray.pcap", packets, times=times)
    analysis = Analysis(max_flows=40)
    for batch in _rebatch(capture, 25):
        analysis.feed(batch)
        assert len(analysis.flows) <= 40 + 25  # the bound, plus at most one batch
    analysis.finish()
    stats = analysis.table_stats()
    assert stats.flows_started == 300
    assert stats.flows_evicted["full"] >= 300 - 65
    assert stats.flows_active + stats.flows_evicted["full"] == 300
    # eviction drops flow records, never traffic: the device totals stay exact
    assert analysis.devices[MONITOR].tx_packets == 300


def test_an_open_window_holds_a_device_s_sightings_in_about_half_a_kilobyte(
    tmp_path: Path,
) -> None:
    # At 100,000 devices a window open for its minute holds every device's sightings: a whole
    # profile per device (six empty containers until the window closes) cost 1.4 KiB each,
    # and a record whose facts were a dict per kind 750 bytes.
    devices = 1000
    packets = [
        Ether(src=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", dst=ENGINE)
        / IP(src=f"10.2.{i // 250}.{i % 250 + 1}", dst="10.1.0.9")
        / UDP(sport=5000, dport=2575)
        / b"x"
        for i in range(devices)
    ]
    capture = write_capture(tmp_path / "many.pcap", packets)
    analysis = Analysis()
    tracemalloc.start()
    try:
        for batch in open_capture(capture):
            analysis.feed(batch)
        assert len(analysis._windows) == 1 and len(analysis.devices) == devices
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        analysis._windows.clear()  # what only the open window held goes with it
        gc.collect()
        held = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert held < devices * 650, f"{held / devices:.0f} bytes per device"


def test_a_closed_window_s_profiles_hold_their_facts_as_counts_not_dicts(tmp_path: Path) -> None:
    # a closing window holds every device's profile at once: a dict per kind cost three times
    # as much (tests/test_facts.py)
    packets, times = hl7_feed(3, 1.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    profiles: list[WindowProfile] = []
    analysis = Analysis(on_window=lambda closed, _: profiles.extend(closed))
    for batch in open_capture(capture):
        analysis.feed(batch)
    analysis.finish()
    monitor = next(p for p in profiles if p.device_id == MONITOR)
    assert isinstance(monitor.facts, FactCounts)
    assert monitor.facts["protocol"]["hl7"] == 3 and ENGINE in monitor.facts["peer"]


def test_idle_flows_are_evicted_and_a_resumed_flow_starts_a_new_record(tmp_path: Path) -> None:
    first, first_times = _udp_spray(1)
    later, later_times = _udp_spray(1, start_time=400.0)  # the same flow, 400 s later
    capture = write_capture(tmp_path / "idle.pcap", first + later, times=first_times + later_times)
    for size in (1, 100_000):
        analysis = Analysis()
        for batch in _rebatch(capture, size):
            analysis.feed(batch)
        stats = analysis.table_stats()
        assert stats.flows_evicted == {"idle": 1}  # UDP times out after 300 s
        assert stats.flows_started == 2 and stats.flows_active == 1


def test_a_mac_flood_evicts_the_quiet_sources_not_the_devices_that_talk(tmp_path: Path) -> None:
    feed, feed_times = hl7_feed(20, 1.0)
    flood = [
        Ether(src=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", dst=ENGINE) / IP() / UDP()
        for i in range(300)
    ]
    flood_times = [30.0 + i * 0.001 for i in range(300)]
    capture = write_capture(tmp_path / "flood.pcap", feed + flood, times=feed_times + flood_times)
    analysis = Analysis(max_devices=64)
    for batch in _rebatch(capture, 50):
        analysis.feed(batch)
    analysis.finish()
    assert len(analysis.devices) <= 64
    assert analysis.table_stats().devices_evicted >= 300 + 2 - 64
    assert {MONITOR, ENGINE} <= set(analysis.devices)


def _monitor_calling_new_peers(path: Path, count: int, interval: float) -> Path:
    """The monitor sends one datagram to a new external address every ``interval`` s: a new
    ``peer`` fact each time, so the device changes in every batch."""
    packets = [
        Ether(src=MONITOR, dst=ENGINE)
        / IP(src="10.1.0.5", dst=f"203.0.113.{1 + k % 250}")
        / UDP(sport=40000 + k, dport=514)
        / b"x"
        for k in range(count)
    ]
    return write_capture(path, packets, times=[k * interval for k in range(count)])


@pytest.fixture(scope="module")
def library() -> SignatureLibrary:
    return load_library(default_signature_dirs())


def test_devices_are_classified_again_at_most_once_a_second_of_capture_time(
    tmp_path: Path, library: SignatureLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live batch is a few milliseconds of traffic: classifying after every one repeats the
    matcher for each device that learned something. Once per second of capture time, and
    when the capture ends, gives the same classes."""
    from monitor import classifier

    capture = _monitor_calling_new_peers(tmp_path / "c.pcap", 240, 0.0125)  # 3 s
    real = classifier.classify
    calls: list[str] = []
    monkeypatch.setattr(
        classifier,
        "classify",
        lambda device, signatures: calls.append(device.id) or real(device, signatures),
    )
    results, rounds = [], []
    for size in (100_000, 8):  # one batch; 30 batches of 0.1 s
        calls.clear()
        analysis = Analysis(signatures=library)
        for batch in _rebatch(capture, size):
            analysis.feed(batch)
        analysis.finish()
        results.append({d.id: d.classification for d in analysis.devices.values()})
        rounds.append(calls.count(MONITOR))
    assert rounds[0] == 1
    assert rounds[1] == 4  # at 0, 1 and 2 s and at the end, not after each of 30 batches
    assert results[0] == results[1]


def test_a_window_is_judged_with_the_class_its_device_had_when_it_ended(
    tmp_path: Path, library: SignatureLibrary
) -> None:
    """A bridge says what it is (a CareLink lookup) only in its second window. One batch
    holds both, but the first window is judged, as frame by frame, with the bridge not yet
    identified; the second, and the bridge after the capture, with what it said."""
    capture = bridge_identified_in_its_second_window(tmp_path / "bridge.pcap")
    judged: list[str] = []

    def keep(closed: list[WindowProfile], analysis: Analysis) -> None:
        if any(p.device_id == BRIDGE for p in closed):
            judged.append(analysis.devices[BRIDGE].device_class)

    for size in (100_000, 1):
        judged.clear()
        analysis = Analysis(signatures=library, on_window=keep)
        for batch in _rebatch(capture, size):
            analysis.feed(batch)
        analysis.finish()
        assert judged == ["unknown", "cgm_gateway", "cgm_gateway"], size
        assert analysis.devices[BRIDGE].device_class == "cgm_gateway", size


def test_a_quiet_wire_tick_classifies_what_changed_once_due(
    tmp_path: Path, library: SignatureLibrary
) -> None:
    capture = _monitor_calling_new_peers(tmp_path / "q.pcap", 2, 0.5)
    first, second = _rebatch(capture, 1)
    analysis = Analysis(signatures=library)
    analysis.feed(first)
    assert not analysis.inventory.dirty  # the first batch is classified at once
    analysis.feed(second)  # half a second later, with a new peer
    assert MONITOR in analysis.inventory.dirty
    analysis.tick(1_700_000_000.0 + 0.9)
    assert MONITOR in analysis.inventory.dirty  # not due yet
    analysis.tick(1_700_000_000.0 + 1.0)
    assert not analysis.inventory.dirty


def test_classification_does_not_wait_when_capture_time_goes_back(
    tmp_path: Path, library: SignatureLibrary
) -> None:
    """A capture replayed again, or a clock stepped back: the new facts are classified at
    once, not when capture time catches up with the newest time seen."""
    capture = _monitor_calling_new_peers(tmp_path / "b.pcap", 2, 0.5)
    first, second = _rebatch(capture, 1)
    analysis = Analysis(signatures=library)
    analysis.feed(second)
    analysis.feed(first)  # half a second earlier, with another new peer
    assert not analysis.inventory.dirty


def test_an_hl7_feed_counts_every_message_however_the_batches_fall(tmp_path: Path) -> None:
    """Messages of one feed that differ only in time and control id are decoded once per
    batch and counted as many times as they were sent, with their first and last times."""
    packets, times = hl7_feed(count=25, interval=2.0)
    capture = write_capture(tmp_path / "feed.pcap", packets, times=times)
    seen = []
    for size in (100_000, 7):
        analysis = _analysed(capture, size)
        (fact,) = analysis.devices[MONITOR].facts["hl7_message_type"].values()
        seen.append((fact.count, fact.first_seen, fact.last_seen))
    start = 1_700_000_000.0
    assert seen[0] == seen[1] == (25, start + 1.0, start + 1.0 + 24 * 2.0)


def test_an_hl7_feed_header_is_not_decoded_again_in_every_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A feed sends the same header all day: in small batches, its header is decoded as
    often for a long feed as for a short one (the messages before the flow is known as HL7
    are decoded on their own), and every message is counted."""
    from monitor import appmeta

    decoded: list[int] = []
    real = appmeta._decode

    def counting(
        app: str | None, transport: int, ports: tuple[int, int], payload: bytes
    ) -> appmeta.Decoded | None:
        if b"MSH" in payload:
            decoded[-1] += 1
        return real(app, transport, ports, payload)

    monkeypatch.setattr(appmeta, "_decode", counting)
    for count in (20, 60):
        monkeypatch.setattr(appmeta, "_cache", {})
        decoded.append(0)
        packets, times = hl7_feed(count=count, interval=2.0)
        capture = write_capture(tmp_path / f"feed-{count}.pcap", packets, times=times)
        analysis = _analysed(capture, 7)  # 3 frames a message: 2 or 3 messages a batch
        monitor = analysis.devices[MONITOR]
        assert monitor.facts["hl7_message_type"]["ORU^R01"].count == count
    assert decoded[0] == decoded[1] <= 3


def test_a_tls_flow_is_opaque_after_its_client_hello_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """What a TLS flow reveals comes first: a second ClientHello later in the flow is not
    read, in one batch as in batches of one frame (where the first one closed the flow's
    inspection before the second arrived)."""
    import struct

    from tests.decode.test_tls import client_hello, ext

    def hello(name: bytes) -> bytes:
        entry = b"\x00" + struct.pack(">H", len(name)) + name
        return client_hello([0x1301], [ext(0x0000, struct.pack(">H", len(entry)) + entry)])

    there = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    back = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    packets = [
        there / TCP(sport=40443, dport=443, flags="S"),
        back / TCP(sport=443, dport=40443, flags="SA"),
        there / TCP(sport=40443, dport=443, flags="PA") / hello(b"first.ward.example"),
        back / TCP(sport=443, dport=40443, flags="A"),
        there / TCP(sport=40443, dport=443, flags="PA") / hello(b"second.ward.example"),
    ]
    capture = write_capture(tmp_path / "tls.pcap", packets)
    for size in (100_000, 1):
        analysis = _analysed(capture, size)
        assert set(analysis.devices[MONITOR].facts["tls_sni"]) == {"first.ward.example"}


RESOLVER = "00:50:56:00:00:53"


def _lookup_and_answer(i: int, client: str, address: str) -> list[object]:
    """Lookup ``i`` of engine.ward.example from a fresh port of ``client`` at ``address``,
    and the resolver's answer (10.1.0.9)."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    port = 40_000 + i
    return [
        Ether(src=client, dst=RESOLVER)
        / IP(src=address, dst="10.1.0.53")
        / UDP(sport=port, dport=53)
        / DNS(id=i, rd=1, qd=DNSQR(qname="engine.ward.example")),
        Ether(src=RESOLVER, dst=client)
        / IP(src="10.1.0.53", dst=address)
        / UDP(sport=53, dport=port)
        / DNS(
            id=i,
            qr=1,
            qd=DNSQR(qname="engine.ward.example"),
            an=DNSRR(rrname="engine.ward.example", rdata="10.1.0.9"),
        ),
    ]


def test_repeated_dns_lookups_count_each_and_every_flow_is_dns(tmp_path: Path) -> None:
    """Lookups of one name, each from a fresh source port with its own id, decode once per
    batch yet count once each, and every one of their flows is labelled DNS."""
    packets = [p for i in range(12) for p in _lookup_and_answer(i, MONITOR, "10.1.0.5")]
    capture = write_capture(tmp_path / "lookups.pcap", packets)
    for size in (100_000, 5):
        analysis = _analysed(capture, size)
        monitor = analysis.devices[MONITOR]
        assert monitor.facts["dns_query"]["engine.ward.example"].count == 12
        assert analysis.protocol_packets["dns"] == 24 and "udp" not in analysis.protocol_packets


def test_a_resolver_s_answers_that_differ_in_their_ttl_alone_decode_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resolver counts a cached answer's TTL down: its answers to one question, each with
    a TTL of its own, go to the decoders once per batch and decode once, in one batch as
    across batches, and each one counts."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    from monitor import appmeta

    answers_given, answers_decoded = [], []
    real_decode, real_uncached = appmeta.decode, appmeta._decode

    def given(
        app: str | None, transport: int, ports: tuple[int, int], payload: bytes, content: int = 0
    ) -> appmeta.Decoded | None:
        answers_given[-1] += 1
        return real_decode(app, transport, ports, payload, content)

    def decoding(
        app: str | None, transport: int, ports: tuple[int, int], payload: bytes
    ) -> appmeta.Decoded | None:
        answers_decoded[-1] += 1
        return real_uncached(app, transport, ports, payload)

    monkeypatch.setattr(appmeta, "decode", given)
    monkeypatch.setattr(appmeta, "_decode", decoding)
    resolver = "00:50:56:00:00:53"
    packets = [
        Ether(src=resolver, dst=MONITOR)
        / IP(src="10.1.0.53", dst="10.1.0.5")
        / UDP(sport=53, dport=40_000 + i)
        / DNS(
            id=i,
            qr=1,
            qd=DNSQR(qname="engine.ward.example"),
            an=DNSRR(rrname="engine.ward.example", ttl=300 - 7 * i, rdata="10.1.0.9"),
        )
        for i in range(12)
    ]
    capture = write_capture(tmp_path / "answers.pcap", packets, times=[2.0 * i for i in range(12)])
    for size in (100_000, 5):
        monkeypatch.setattr(appmeta, "_cache", {})
        answers_given.append(0)
        answers_decoded.append(0)
        analysis = _analysed(capture, size)
        assert analysis.protocol_packets["dns"] == 12
    assert answers_given == [1, 3]  # batches of 5 frames: 3 batches
    assert answers_decoded == [1, 1]


def test_a_resolver_s_one_answer_to_many_clients_decodes_once_and_counts_for_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an answer says is about the resolver: the same answer to twelve clients goes to
    the decoders once in a batch, counts twelve times, and labels every client's flow."""

    from monitor import appmeta

    answers_given: list[int] = []
    real_decode = appmeta.decode

    def given(
        app: str | None, transport: int, ports: tuple[int, int], payload: bytes, content: int = 0
    ) -> appmeta.Decoded | None:
        if ports[0] == 53:
            answers_given[-1] += 1
        return real_decode(app, transport, ports, payload, content)

    monkeypatch.setattr(appmeta, "decode", given)
    packets = [
        p
        for i in range(12)
        for p in _lookup_and_answer(i, f"00:09:fb:00:01:{i:02x}", f"10.1.1.{10 + i}")
    ]
    capture = write_capture(tmp_path / "clients.pcap", packets)
    for size in (100_000, 8):
        answers_given.append(0)
        analysis = _analysed(capture, size)
        assert analysis.devices[RESOLVER].facts["protocol"]["dns"].count == 12
        for i in range(12):
            assert analysis.devices[f"00:09:fb:00:01:{i:02x}"].facts["dns_query"]
        assert analysis.protocol_packets["dns"] == 24 and "udp" not in analysis.protocol_packets
    assert answers_given == [1, 3]  # batches of 8 frames: 4 answers each


def test_one_sender_s_same_question_by_mdns_and_by_dns_decodes_as_each(tmp_path: Path) -> None:
    """Messages group for decoding by sender and by the decoder their ports choose: the same
    question asked by multicast and of a resolver counts once as mDNS and once as DNS."""
    from scapy.layers.dns import DNS, DNSQR

    question = DNS(id=7, rd=0, qd=DNSQR(qname="engine.local"))
    packets = [
        Ether(src=MONITOR, dst="01:00:5e:00:00:fb")
        / IP(src="10.1.0.5", dst="224.0.0.251")
        / UDP(sport=5353, dport=5353)
        / question,
        Ether(src=MONITOR, dst="00:50:56:00:00:53")
        / IP(src="10.1.0.5", dst="10.1.0.53")
        / UDP(sport=40_000, dport=53)
        / question,
    ]
    capture = write_capture(tmp_path / "both.pcap", packets)
    protocol = _analysed(capture, 100_000).devices[MONITOR].facts["protocol"]
    assert (protocol["mdns"].count, protocol["dns"].count) == (1, 1)


def _window_summary(capture: Path, batch_frames: int) -> tuple[object, object]:
    windows: list[tuple[object, ...]] = []

    def on_window(profiles: list[WindowProfile], analysis: Analysis) -> None:
        for p in profiles:
            windows.append(
                (
                    *(p.device_id, p.start, p.tx_packets, p.rx_packets, sorted(p.peers)),
                    *(p.services, p.protocols, p.conversations, p.facts, p.flows_started),
                )
            )

    analysis = Analysis(window_seconds=30, on_window=on_window)
    for batch in _rebatch(capture, batch_frames):
        analysis.feed(batch)
    analysis.finish()
    devices = {
        d.id: {k: {v: f.count for v, f in vs.items()} for k, vs in d.facts.items()}
        for d in analysis.devices.values()
    }
    return windows, devices


def test_results_do_not_depend_on_when_interned_keys_are_compacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    packets, times = hl7_feed(count=40, interval=3.0)
    spray, spray_times = _udp_spray(50, start_time=20.0)
    order = sorted(range(len(times + spray_times)), key=(times + spray_times).__getitem__)
    capture = write_capture(
        tmp_path / "mixed.pcap",
        [(packets + spray)[i] for i in order],
        times=[(times + spray_times)[i] for i in order],
    )
    usual = _window_summary(capture, 4)
    compactions = []
    compact = Analysis._compact_keys

    def counted(self: Analysis) -> None:
        compactions.append(len(self.flows))
        compact(self)

    # compact before every batch: every interned key is dropped and interned anew, between
    # the two segments of a message too, so a lost last-message time would split messages
    monkeypatch.setattr("monitor.pipeline.KEYS_PER_FLOW", 0)
    monkeypatch.setattr("monitor.pipeline.KEY_SLACK", 0)
    monkeypatch.setattr("monitor.pipeline.FLOW_SWEEP_SECONDS", 0.001)
    monkeypatch.setattr(Analysis, "_compact_keys", counted)
    assert _window_summary(capture, 4) == usual
    assert len(compactions) > 30


def test_keys_interned_anew_a_slice_at_a_time_are_those_interned_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood's live flows are interned anew a slice at a time: every flow keeps its keys and
    every conversation its last message time, whichever slice they fall in."""
    spray, spray_times = _udp_spray(12)  # first seen first: the feed's keys come after
    again, again_times = _udp_spray(12, start_time=100.0)  # the same flows, on their keys
    packets, times = hl7_feed(count=40, interval=3.0)
    times = [t + 1.0 for t in times]
    everything, when = spray + again + packets, spray_times + again_times + times
    order = sorted(range(len(when)), key=when.__getitem__)
    capture = write_capture(
        tmp_path / "mixed.pcap", [everything[i] for i in order], times=[when[i] for i in order]
    )
    monkeypatch.setattr("monitor.pipeline.KEYS_PER_FLOW", 0)
    monkeypatch.setattr("monitor.pipeline.KEY_SLACK", 0)
    monkeypatch.setattr("monitor.pipeline.FLOW_SWEEP_SECONDS", 0.001)
    at_once = _window_summary(capture, 4)
    monkeypatch.setattr("monitor.pipeline.COMPACTION_SLICE", 2)
    assert _window_summary(capture, 4) == at_once


def _address_use(capture: Path, batch_frames: int) -> list[tuple[float, dict[str, object]]]:
    windows: list[tuple[float, dict[str, object]]] = []
    analysis = Analysis(
        window_seconds=10.0,
        on_window=lambda closed, _: windows.extend(
            (p.start, dict(p.address_use)) for p in closed if p.device_id == MONITOR
        ),
    )
    for batch in _rebatch(capture, batch_frames):
        analysis.feed(batch)
    analysis.finish()
    return windows


def test_a_window_counts_a_devices_addresses_from_its_second_on_in_one_batch_as_alone(
    tmp_path: Path,
) -> None:
    """A window's address use (what the ARP detector tells a move from a spoofer by) holds,
    per IPv4 address, the packets a device sent from it once it had two and the last one's
    time: nothing while it had one, in one batch as frame by frame."""

    def sent(address: str) -> object:
        return Ether(src=MONITOR, dst=ENGINE) / IP(src=address, dst="10.1.0.9") / UDP(dport=514)

    packets = [sent("10.1.0.5") for _ in range(4)]  # the first window: one address
    times = [1.0, 2.0, 3.0, 4.0]
    packets += [sent("10.1.0.5"), sent("10.1.0.6"), sent("10.1.0.5"), sent("10.1.0.6")]
    times += [11.0, 12.0, 13.0, 14.0]  # the second: a second address, the first used again
    packets += [sent("10.1.0.5")] * 3
    times += [21.0, 22.0, 23.0]
    capture = write_capture(tmp_path / "two-addresses.pcap", packets, 1_700_000_000.0, times)
    start = 1_700_000_000.0
    assert _address_use(capture, 1) == [
        (start, {}),
        (start + 10, {"10.1.0.6": (2, start + 14), "10.1.0.5": (1, start + 13)}),
        (start + 20, {"10.1.0.5": (3, start + 23)}),
    ]
    assert _address_use(capture, 65_536) == _address_use(capture, 1)


MINUTE = 1_699_999_980.0  # a window's start (windows of 60 s)


def _first_window_of_each_fact(capture: Path, batch_frames: int, device_id: str) -> object:
    """Per window of ``device_id`` (offset from MINUTE): its packets and the facts it noted."""
    return [
        (p["start"] - MINUTE, p["tx_packets"], p["rx_packets"], p["peers"], p["facts"])
        for p in _profiles_of(capture, batch_frames, device_id)
    ]


def test_a_device_takes_a_flow_begun_to_it_a_window_earlier_in_the_window_of_its_first_frame(
    tmp_path: Path,
) -> None:
    """An internet host's datagrams reach a plug's address through the router in one
    minute; the plug first sends in the next, after others did. Frame by frame the plug
    takes the flow's side at its first frame, once the first minute closed: the flow's
    peer and its packets so far count in the second. One batch, holding it all, is cut
    there and does the same (before, the plug's first window was the first); so is a batch
    of the chatter and the plug's first frames, the flow waiting from the batch before."""
    router, plug, other = "00:1b:54:00:00:05", "74:da:38:23:22:7b", ENGINE
    inbound = (
        Ether(src=router, dst=plug)
        / IP(src="122.248.252.67", dst="10.0.0.5")
        / UDP(sport=8765, dport=60919)
        / (b"x" * 40)
    )
    outbound = (
        Ether(src=plug, dst=router)
        / IP(src="10.0.0.5", dst="122.248.252.67")
        / UDP(sport=60919, dport=8765)
        / (b"y" * 40)
    )
    chatter = Ether(src=other, dst=router) / IP(src="10.0.0.9", dst="10.0.0.1") / UDP(dport=53)
    packets = [inbound.copy() for _ in range(3)] + [chatter, outbound, inbound.copy()]
    times = [1.0, 2.0, 3.0, 62.0, 65.0, 66.0]
    capture = write_capture(tmp_path / "late-plug.pcap", packets, MINUTE, times)
    frame_by_frame = _first_window_of_each_fact(capture, 1, plug)
    assert [(start, peers) for start, _, _, peers, _ in frame_by_frame] == [
        (60.0, {"ext:122.248.252.67"})
    ]
    for batch_frames in (65_536, 3):
        assert _first_window_of_each_fact(capture, batch_frames, plug) == frame_by_frame


def _reply_after_the_window_turned(first_packet_is_the_reply: bool) -> list[tuple[object, float]]:
    """A monitor and an engine known from the first seconds; a request from the monitor at
    5 s and others' chatter at 62 s (or neither), the engine's answer at 65 s."""
    monitor = Ether(src=MONITOR, dst=ENGINE) / IP(src="10.1.0.5", dst="10.1.0.9")
    engine = Ether(src=ENGINE, dst=MONITOR) / IP(src="10.1.0.9", dst="10.1.0.5")
    chatter = Ether(src=BRIDGE, dst=ENGINE) / IP(src="10.1.0.7", dst="10.1.0.9") / UDP(dport=53)
    frames: list[tuple[object, float]] = [
        (monitor / UDP(sport=40000, dport=123), 1.0),
        (engine / UDP(sport=123, dport=40000), 2.0),
    ]
    if first_packet_is_the_reply:
        frames.append((engine / TCP(sport=2575, dport=40001, flags="SA"), 65.0))
    else:
        frames.append((monitor / UDP(sport=40001, dport=514) / b"log", 5.0))
        frames.append((chatter, 62.0))
        frames.append((engine / UDP(sport=514, dport=40001) / b"ok", 65.0))
    return sorted(frames, key=lambda frame: frame[1])


@pytest.mark.parametrize("first_packet_is_the_reply", [False, True])
def test_a_service_told_by_an_answer_counts_in_the_window_open_then_however_the_batches_fall(
    tmp_path: Path, first_packet_is_the_reply: bool
) -> None:
    """The engine's answer at 65 s tells its service. Frame by frame, the first minute had
    closed when it came (others sent at 62 s): the service counts in the second minute's
    profile, dated from the request in the first; so in one batch. An answer that is the
    flow's first packet counts in its own window, also when the frame before was in the
    first minute (still open then)."""
    frames = _reply_after_the_window_turned(first_packet_is_the_reply)
    capture = write_capture(
        tmp_path / "answer.pcap", [p for p, _ in frames], MINUTE, [t for _, t in frames]
    )
    service = "tcp/2575" if first_packet_is_the_reply else "udp/514"
    frame_by_frame = _first_window_of_each_fact(capture, 1, ENGINE)
    offered = [
        start for start, *_, facts in frame_by_frame if service in facts.get("service_offered", {})
    ]
    assert offered == [60.0]
    assert _first_window_of_each_fact(capture, 65_536, ENGINE) == frame_by_frame


def test_a_router_s_own_address_is_its_own_from_its_arp_however_the_batches_fall(
    tmp_path: Path,
) -> None:
    """A gateway forwards an internet host's datagram, then sends from its own address,
    then ARPs for it. Frame by frame the send before the ARP is refused (a router's plain
    traffic binds no address) and the address is its own from the ARP; one batch, which
    binds the batch's ARP senders first, is cut before the ARP and does the same."""
    gateway, laptop = "00:1b:54:00:00:05", "b0:83:fe:00:00:03"
    frames = [
        Ether(src=gateway, dst=laptop) / IP(src="198.51.100.7", dst="10.0.0.30") / UDP(dport=443),
        Ether(src=gateway, dst=laptop) / IP(src="10.0.0.1", dst="10.0.0.30") / UDP(sport=67),
        Ether(src=gateway, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.30"),
        Ether(src=gateway, dst=laptop) / IP(src="10.0.0.1", dst="10.0.0.30") / UDP(sport=53),
    ]
    capture = write_capture(tmp_path / "gateway.pcap", frames, MINUTE, [1.0, 2.0, 5.0, 6.0])

    def own_address(batch_frames: int) -> object:
        fact = _analysed(capture, batch_frames).devices[gateway].facts["ip"].get("10.0.0.1")
        return fact and (fact.first_seen - MINUTE, fact.count)

    assert own_address(1) == (5.0, 2)
    assert own_address(65_536) == own_address(1)
