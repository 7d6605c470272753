"""A deterministic stream of window profiles for the baseline and state tests.

``window_profiles(seed, i)`` is what the pipeline would hand over when window ``i`` closes:
a few dozen devices, most of them active, each with its usual peers and DNS names, now and
then a new one, and a steady conversation whose messages keep a per-device period across
window boundaries. The same (seed, i) always gives the same profiles, so a learner that is
killed and restarted can be compared with one that ran straight through.
"""

from __future__ import annotations

import random

from monitor.model import Device, WindowProfile

T0 = 1_700_000_000.0  # a Tuesday, 22:13:20 UTC


def device_id(d: int) -> str:
    return f"02:00:00:00:{d // 256:02x}:{d % 256:02x}"


def window_profiles(
    seed: int, index: int, devices: int = 30, window: float = 60.0, t0: float = T0
) -> list[WindowProfile]:
    rng = random.Random(f"{seed}:{index}")
    start = t0 + index * window
    end = start + window
    out: list[WindowProfile] = []
    for d in range(devices):
        if rng.random() < 0.15:
            continue  # silent this window
        peers = {f"ext:192.0.2.{d % 50 + k}" for k in range(3)}
        if rng.random() < 0.03:
            peers.add(f"ext:198.51.100.{rng.randrange(256)}")
        period = 5.0 + d  # seconds: device d reports every 5+d s
        first_k = int((start - t0) // period) + 1
        times = []
        k = first_k
        while t0 + k * period < end:
            base = t0 + k * period
            if base >= start:
                jitter = random.Random(f"{seed}:{d}:{k}").uniform(0.0, 0.2)
                times += [base + jitter, base + jitter + 0.01]  # a two-segment burst
            k += 1
        tx = len(times) + rng.randrange(5)
        out.append(
            WindowProfile(
                device_id=device_id(d),
                start=start,
                end=end,
                tx_packets=tx,
                tx_bytes=tx * rng.randrange(60, 1400),
                rx_packets=tx,
                rx_bytes=tx * 80,
                flows_started=rng.randrange(3),
                peers=peers,
                services={"udp/53": 2},
                protocols={"dns": 2, "tls": tx},
                facts={
                    "dns_query": {f"svc{d % 7}.example.net": 2},
                    "service_used": {"tcp/443": 1, "udp/53": 2},
                },
                conversations={f"ext:192.0.2.{d % 50}|tcp/443": [t for t in times if t < end]},
            )
        )
    return out


def apply_to_inventory(devices: dict[str, Device], profiles: list[WindowProfile]) -> None:
    """What the inventory would have done for these windows (totals, facts, last seen)."""
    for p in profiles:
        device = devices.get(p.device_id)
        if device is None:
            device = Device(p.device_id, p.device_id, True, None, p.start, p.start)
            devices[p.device_id] = device
        device.last_seen = max(device.last_seen, p.end)
        device.tx_packets += p.tx_packets
        device.tx_bytes += p.tx_bytes
        device.rx_packets += p.rx_packets
        device.rx_bytes += p.rx_bytes
        for peer in sorted(p.peers):
            device.facts.record("peer", peer, p.end)
