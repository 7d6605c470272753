"""Silence: a steady feed that stops is found; *gone* is told from *application silent*; a
blind sensor is one sensor event, not silent devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.baseline import BaselineConfig, BaselineStore
from monitor.detectors.silence import SilenceDetector
from monitor.model import WindowProfile
from monitor.pipeline import Analysis
from tests.detectors.helpers import (
    ENGINE,
    LAB_DEMO,
    LAPTOP,
    MONITOR,
    ROUTER,
    T0,
    WINDOW,
    arp_request,
    every,
    run,
    udp,
    ward,
    write,
)

LEARN_END = T0 + 150.0
END = T0 + 260.0


def test_feed_that_keeps_going_raises_no_silence(tmp_path: Path) -> None:
    capture = write(tmp_path / "steady.pcap", ward(T0, END))
    result = run([capture])
    assert result.store.get(MONITOR[0]) is not None and result.store.get(MONITOR[0]).enforcing
    assert [e for e in result.events if e.detector.startswith("silence")] == []
    assert result.of("sensor_blind") == []


def test_unplugged_device_is_gone(tmp_path: Path) -> None:
    # the monitor sends nothing at all after LEARN_END: no feed, no ARP
    capture = write(tmp_path / "gone.pcap", ward(T0, END, feed_until=LEARN_END,
                                                 monitor_chatter=False))  # fmt: skip
    result = run([capture])
    gone = result.of("silence_gone", MONITOR[0])
    assert len(gone) == 1, [e.to_dict() for e in result.events]
    assert result.of("silence_app") == []
    event = gone[0]
    # found after k x 5 s (and the 10 s floor), within two windows of that
    assert LEARN_END + 10.0 < event.time <= LEARN_END + 15.0 + 2 * 5.0
    assert event.baseline["interval_seconds"] == pytest.approx(5.0, abs=0.1)
    assert "gone off the network" in event.summary
    assert event.device_class == "unknown" and event.severity == "high"


def test_host_still_talking_but_feed_stopped_is_application_silence(tmp_path: Path) -> None:
    packets = ward(T0, END, feed_until=LEARN_END, monitor_chatter=False)
    # the host is up: it keeps resolving its gateway (ARP) every 4 s
    packets += [arp_request(MONITOR, ROUTER[1], t) for t in every(T0 + 1.1, END, 4.0)]
    capture = write(tmp_path / "app.pcap", packets)
    result = run([capture])
    app = result.of("silence_app", MONITOR[0])
    assert len(app) == 1, [e.to_dict() for e in result.events]
    assert result.of("silence_gone") == []
    assert "still on the network" in app[0].summary
    assert app[0].observed["silent_conversations"] == [f"{ENGINE[0]}|udp/2575"]


def test_a_sensor_that_sees_nothing_is_a_sensor_problem_not_silent_devices(
    tmp_path: Path,
) -> None:
    # everything stops at LEARN_END: then capture time moves on (live ticks) with no packet
    capture = write(tmp_path / "blind.pcap", ward(T0, LEARN_END))
    result = run([capture])
    new = result.suite.tick(result.analysis, result.store, LEARN_END + 100.0)
    assert [e.detector for e in new] == ["sensor_blind"]
    assert new[0].device == "sensor"
    assert [e for e in result.events if e.detector.startswith("silence")] == []


def test_silence_is_found_on_tick_when_the_wire_is_quiet(tmp_path: Path) -> None:
    # the monitor is unplugged; a trickle keeps the sensor seeing packets until LEARN_END + 8,
    # then nothing closes a window: the live tick must still find the silence
    packets = ward(T0, LEARN_END + 8.0, feed_until=LEARN_END, monitor_chatter=False)
    capture = write(tmp_path / "quiet.pcap", packets)
    result = run([capture])
    assert result.of("silence_gone") == []  # not yet k x cadence when the last window closed
    events = result.suite.tick(result.analysis, result.store, LEARN_END + 14.0)
    assert [(e.detector, e.device) for e in events] == [("silence_gone", MONITOR[0])]


@pytest.mark.skipif(not (LAB_DEMO / "truth.json").is_file(), reason="lab demo capture absent")
def test_lab_monitor_whose_application_stopped_is_application_silence() -> None:
    import json

    truth = json.loads((LAB_DEMO / "truth.json").read_text())
    (event,) = [e for e in truth["events"] if e["anomaly"] == "silence_app"]
    from tests.detectors.lab import run_lab

    result = run_lab(LAB_DEMO)
    found = result.of("silence_app", event["device"]["mac"])
    assert len(found) == 1
    assert found[0].time >= event["start"]
    assert result.of("silence_gone") == []


def test_most_steady_devices_falling_silent_at_once_is_one_sensor_event(tmp_path: Path) -> None:
    hosts = [(f"00:09:fb:00:01:{k:02x}", f"10.9.0.{120 + k}") for k in range(6)]
    packets = ward(T0, END, feed_until=LEARN_END, monitor_chatter=False)
    for k, host in enumerate(hosts):
        packets += [udp(host, ENGINE, t + 0.1 * k, 41000, 2575) for t in every(T0, LEARN_END, 5.0)]
    capture = write(tmp_path / "span-lost.pcap", packets)
    result = run([capture])
    assert [e.detector for e in result.events if e.detector.startswith("silence")] == []
    (event,) = result.of("sensor_blind")
    assert len(event.observed["silent_devices"]) == 7  # the monitor and the six others


def test_conversations_the_baseline_no_longer_tracks_are_not_remembered(tmp_path: Path) -> None:
    # The laptop talks to a new port every 2 s (a scanner, a chatty app): hundreds of
    # short-lived conversations. The baseline keeps its 4 most recent; the silence detector
    # must not keep the others for ever (a daemon runs for months).
    packets = ward(T0, END)
    packets += [udp(LAPTOP, ENGINE, t, 42000, 10000 + k) for k, t in enumerate(every(T0, END, 2.0))]
    capture = write(tmp_path / "churn.pcap", packets)
    store = BaselineStore(BaselineConfig(min_duration=60.0, min_windows=8, max_conversations=4))
    result = run([capture], store=store)
    (silence,) = [d for d in result.suite.detectors if isinstance(d, SilenceDetector)]
    baseline = result.store.get(LAPTOP[0])
    assert baseline is not None and len(baseline.cadence) == 4
    remembered = silence.last_message[LAPTOP[0]]
    # at most the conversations of the last window scored (the baseline had not learned it
    # yet): nothing older
    assert len(remembered) <= WINDOW / 2.0 + 2
    assert max(remembered.values()) - min(remembered.values()) < WINDOW
    # and the monitor's steady feed is still remembered and still not silent
    assert f"{ENGINE[0]}|udp/2575" in silence.last_message[MONITOR[0]]
    assert [e for e in result.events if e.detector.startswith("silence")] == []


def test_a_last_message_the_baseline_learned_is_not_kept_twice_nor_lost_when_it_is_frozen() -> None:
    # The detector keeps a last-message time only for what the baseline has not learned:
    # on a site of 100,000 devices a copy of every conversation's would be tens of MiB.
    store = BaselineStore(BaselineConfig(min_duration=0.0, min_windows=1))
    silence = SilenceDetector()
    analysis = Analysis()
    feed, other = f"{ENGINE[0]}|udp/2575", f"{ENGINE[0]}|udp/5000"

    def window(start: float, conversations: dict[str, list[float]]) -> None:
        profile = WindowProfile(
            MONITOR[0], start, start + WINDOW, tx_packets=1, conversations=conversations
        )
        silence.score_window([profile], analysis, store, profile.end)  # score, then learn
        store.learn_window([profile])

    window(T0, {feed: [T0 + 1.0], other: [T0 + 2.0]})
    window(T0 + WINDOW, {feed: [T0 + WINDOW + 1.0]})
    baseline = store.get(MONITOR[0])
    assert baseline is not None
    # the baseline learned the other conversation's last message: it is kept there only
    assert silence.last_message[MONITOR[0]] == {feed: T0 + WINDOW + 1.0}
    assert silence._last(MONITOR[0], other, baseline) == T0 + 2.0
    baseline.freeze()  # it learns nothing more: what the detector sees is all there is
    window(T0 + 2 * WINDOW, {feed: [T0 + 2 * WINDOW + 1.0]})
    window(T0 + 3 * WINDOW, {other: [T0 + 3 * WINDOW + 2.0]})
    assert baseline.cadence[feed].last_message == T0 + WINDOW + 1.0
    assert silence._last(MONITOR[0], feed, baseline) == T0 + 2 * WINDOW + 1.0
    assert silence._last(MONITOR[0], other, baseline) == T0 + 3 * WINDOW + 2.0


def test_learned_last_messages_are_forgotten_at_the_next_window_if_the_device_never_returns() -> (
    None
):
    # A flood of 100,000 devices that each send in one window only: what the baselines
    # learned must not stay here as well until the device comes back (it may never).
    store = BaselineStore(BaselineConfig(min_duration=0.0, min_windows=1))
    silence = SilenceDetector()
    analysis = Analysis()
    feed = f"{ENGINE[0]}|udp/2575"

    def window(device_id: str, start: float) -> None:
        profile = WindowProfile(
            device_id, start, start + WINDOW, tx_packets=1, conversations={feed: [start + 1.0]}
        )
        silence.score_window([profile], analysis, store, profile.end)  # score, then learn
        store.learn_window([profile])

    window(MONITOR[0], T0)
    assert silence.last_message[MONITOR[0]] == {feed: T0 + 1.0}  # not learned when scored
    window(LAPTOP[0], T0 + WINDOW)
    assert MONITOR[0] not in silence.last_message
    monitor = store.get(MONITOR[0])
    assert monitor is not None and silence._last(MONITOR[0], feed, monitor) == T0 + 1.0
    store.get(LAPTOP[0]).freeze()  # type: ignore[union-attr]
    window(LAPTOP[0], T0 + 2 * WINDOW)  # not learned: it stays
    window(MONITOR[0], T0 + 3 * WINDOW)
    assert silence.last_message[LAPTOP[0]] == {feed: T0 + 2 * WINDOW + 1.0}
