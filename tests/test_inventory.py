"""The inventory: one device per MAC, IEEE vendors, address bindings that survive IP changes
and do not pile a network's addresses onto its router."""

from __future__ import annotations

import ipaddress
import random
from pathlib import Path

import netaddr
import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from monitor.facts import FactJournal
from monitor.inventory import (
    Inventory,
    _vendor_of_oui,
    address_scope,
    external_addresses,
    vendor_of,
)
from monitor.pipeline import analyze_captures
from tests.support.packets import write_capture

PUMP = "00:1b:63:aa:00:01"  # an Apple OUI is fine for a unit test: only the registry matters
ROUTER = "00:b5:6d:06:08:ba"


def test_every_iot_sentinel_device_is_found_with_its_ieee_vendor(shared_pcaps: Path) -> None:
    root = shared_pcaps / "iot-sentinel"
    folders = sorted(p for p in root.iterdir() if p.is_dir() and list(p.glob("*.pcap")))
    assert len(folders) >= 20
    for folder in folders:
        mac = (folder / "_iotdevice-mac.txt").read_text().split()[0].strip().lower()
        analysis = analyze_captures(sorted(folder.glob("*.pcap"))[:2])
        assert mac in analysis.devices, f"{folder.name}: {mac} not in the inventory"
        try:
            expected = netaddr.EUI(mac).oui.registration().org
        except netaddr.NotRegisteredError:
            expected = None
        assert analysis.devices[mac].vendor == expected, folder.name


def test_locally_administered_macs_are_marked(tmp_path: Path) -> None:
    packets = [
        Ether(src="02:00:00:00:00:01", dst=PUMP) / IP(src="10.0.0.9", dst="10.0.0.5") / UDP(),
        Ether(src=PUMP, dst="02:00:00:00:00:01") / IP(src="10.0.0.5", dst="10.0.0.9") / UDP(),
    ]
    analysis = analyze_captures([write_capture(tmp_path / "c.pcap", packets)])
    assert analysis.devices["02:00:00:00:00:01"].locally_administered
    assert not analysis.devices[PUMP].locally_administered


def test_identity_survives_an_ip_change(tmp_path: Path) -> None:
    packets = [
        Ether(src=PUMP, dst=ROUTER) / IP(src="10.0.0.5", dst="10.0.0.1") / UDP(dport=123),
        Ether(src=PUMP, dst=ROUTER) / IP(src="10.0.0.77", dst="10.0.0.1") / UDP(dport=123),
    ]
    analysis = analyze_captures([write_capture(tmp_path / "c.pcap", packets)])
    device = analysis.devices[PUMP]
    assert device.ips == ["10.0.0.5", "10.0.0.77"]
    assert [d for d in analysis.devices if d.startswith("ip:")] == []


def test_a_router_does_not_collect_the_addresses_it_forwards(tmp_path: Path) -> None:
    packets = [
        Ether(src=ROUTER, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, hwsrc=ROUTER, psrc="10.0.0.1", pdst="10.0.0.5"),
        Ether(src=ROUTER, dst=PUMP) / IP(src="10.0.0.1", dst="10.0.0.5") / UDP(sport=53),
        Ether(src=ROUTER, dst=PUMP) / IP(src="203.0.113.9", dst="10.0.0.5") / TCP(sport=443),
        Ether(src=ROUTER, dst=PUMP) / IP(src="10.9.0.3", dst="10.0.0.5") / TCP(sport=2575),
    ]
    analysis = analyze_captures([write_capture(tmp_path / "c.pcap", packets)])
    router = analysis.devices[ROUTER]
    assert router.ips == ["10.0.0.1"]


def test_binding_that_shows_a_router_returns_the_addresses_it_loses() -> None:
    inventory = Inventory()
    router = inventory.device_for_mac(int(ROUTER.replace(":", ""), 16), 0.0)
    inventory.bind(router, "10.0.0.1", 0.0, authoritative=True)
    assert inventory.bind(router, "10.0.0.7", 1.0, authoritative=False) == ()
    assert inventory.ip_owner["10.0.0.7"] == ROUTER
    # forwarded from the internet: a router, and what plain traffic bound was never its own
    assert inventory.bind(router, "203.0.113.9", 2.0, authoritative=False) == ("10.0.0.7",)
    assert ROUTER in inventory.routers
    assert inventory.ip_owner == {"10.0.0.1": ROUTER}
    assert inventory.bind(router, "10.0.0.8", 3.0, authoritative=False) == ()


@pytest.mark.parametrize(
    ("relative", "mac"),
    [
        ("arkime/wireshark-dhcp.pcap", None),
        ("chrissanders-packets/dhcp_nolease_initialization.pcapng", None),
        ("chrissanders-packets/dhcp_inlease_renewal.pcapng", None),
        ("iot-sentinel/D-LinkCam/Setup-A-1-STA.pcap", None),
        ("iot-sentinel/EdimaxPlug1101W/Setup-A-1-STA.pcap", None),
        ("iot-sentinel/HueBridge/Setup-A-1-STA.pcap", None),
        ("iot-sentinel/Aria/Setup-A-1-STA.pcap", None),
        ("iot-sentinel/WeMoSwitch/Setup-A-1-STA.pcap", None),
    ],
)
def test_dhcp_fingerprints_in_the_inventory_equal_tsharks(
    shared_pcaps: Path, relative: str, mac: str | None
) -> None:
    import subprocess

    from tests.support.tshark import require_tshark

    capture = shared_pcaps / relative
    out = subprocess.run(
        [
            require_tshark(),
            "-n",
            "-r",
            str(capture),
            "-Y",
            "dhcp.option.dhcp == 1 || "
            "dhcp.option.dhcp == 3 || dhcp.option.dhcp == 8 || "
            "(dhcp.type == 1 && !dhcp.option.dhcp)",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "aggregator=,",
            "-e",
            "dhcp.hw.mac_addr",
            "-e",
            "dhcp.option.hostname",
            "-e",
            "dhcp.option.vendor_class_id",
            "-e",
            "dhcp.option.request_list_item",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    expected: dict[str, dict[str, set[str]]] = {}
    for line in out.splitlines():
        hw, hostname, vendor, params = [*line.split("\t"), "", "", "", ""][:4]
        facts = expected.setdefault(
            hw.split(",")[0].lower(),
            {"hostname": set(), "dhcp_vendor_class": set(), "dhcp_param_list": set()},
        )
        if hostname:
            facts["hostname"].add(hostname)
        if vendor:
            facts["dhcp_vendor_class"].add(vendor)
        if params:
            facts["dhcp_param_list"].add(params)
    assert expected, f"tshark found no DHCP client message in {relative}"
    analysis = analyze_captures([capture])
    for hw, facts in expected.items():
        device = analysis.devices[hw]
        for kind in ("dhcp_vendor_class", "dhcp_param_list"):
            assert set(device.facts.get(kind, {})) == facts[kind], (hw, kind)
        assert facts["hostname"] <= set(device.facts.get("hostname", {})), hw


def test_the_vendor_is_looked_up_once_per_oui_in_any_mac_notation() -> None:
    _vendor_of_oui.cache_clear()
    macs = [f"00:09:fb:{i >> 8:02x}:{i & 0xFF:02x}:01" for i in range(1000)]
    assert {vendor_of(mac) for mac in macs} == {"Philips Patient Monitoring"}
    assert _vendor_of_oui.cache_info().misses == 1, "one registry lookup for one OUI"
    for notation in ("00-09-FB-86-C6-57", "0009.fb86.c657", "0009fb86c657"):
        assert vendor_of(notation) == "Philips Patient Monitoring", notation
    for bad in ("00:09:fb", "zz:09:fb:86:c6:57", "00:09:fb:86:c6:zz", ""):
        assert vendor_of(bad) is None, bad
    assert vendor_of("02:00:00:00:00:01") is None  # locally administered: not registered


def test_a_fact_taken_back_to_none_is_journaled_as_removed_and_reclassified() -> None:
    """A worker's report tells the daemon a value went; a lower count is not reported (the
    daemon keeps the count it was told), and nothing is said of a value never recorded."""
    inventory = Inventory()
    inventory.journal = FactJournal()
    device = inventory.device_for_mac(0x00D07510_0A05, 1.0)
    inventory.note(device, "peer", "ip:10.0.0.9", 1.0, 2)
    inventory.journal.take()
    inventory.dirty.clear()
    inventory.take_back(device, "peer", "ip:10.0.0.9")
    inventory.take_back(device, "peer", "ip:10.0.0.77")
    assert inventory.journal.take() == ({}, set(), set())
    assert not inventory.dirty
    inventory.take_back(device, "peer", "ip:10.0.0.9")
    assert "peer" not in device.facts
    assert inventory.journal.take()[1] == {(device.id, "peer", "ip:10.0.0.9")}
    assert inventory.dirty == {device.id}


def test_external_addresses_of_a_column_are_those_address_scope_calls_external() -> None:
    rng = random.Random(7)
    addresses = [
        *(ipaddress.IPv4Address(rng.getrandbits(32)) for _ in range(3000)),
        *(ipaddress.IPv6Address(rng.getrandbits(128)) for _ in range(1000)),
        *map(ipaddress.ip_address, ("10.1.2.3", "172.31.0.1", "172.32.0.1", "192.168.9.9")),
        *map(ipaddress.ip_address, ("100.64.0.1", "100.128.0.1", "169.254.1.1", "127.0.0.1")),
        *map(ipaddress.ip_address, ("224.0.0.251", "0.0.0.0", "255.255.255.255", "8.8.8.8")),
        *map(ipaddress.ip_address, ("fe80::1", "fd00::1", "fc00::1", "ff02::fb", "::1", "::")),
        *map(ipaddress.ip_address, ("2001:db8::1", "febf::1", "fec0::1")),
    ]
    hi = np.array([int(a) >> 64 for a in addresses], np.uint64)
    lo = np.array([int(a) & (2**64 - 1) for a in addresses], np.uint64)
    version = np.array([a.version for a in addresses], np.uint8)
    expected = [address_scope(str(a)) == "external" for a in addresses]
    assert external_addresses(hi, lo, version).tolist() == expected
