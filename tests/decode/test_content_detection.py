"""The ``looks_like`` checks of monitor/decode/* together: the dispatcher picks a decoder by
content, so no decoder may claim another protocol's payload."""

from __future__ import annotations

from types import ModuleType

import pytest

from monitor.decode import dhcp, dicom, dns, hl7, http, mqtt, ssdp, tls
from tests.decode import (
    test_dhcp,
    test_dicom,
    test_dns,
    test_hl7,
    test_http,
    test_mqtt,
    test_ssdp,
    test_tls,
)

DECODERS: dict[str, tuple[ModuleType, list[bytes]]] = {
    "dhcp": (dhcp, test_dhcp.SAMPLES),
    "dns": (dns, test_dns.SAMPLES),
    "ssdp": (ssdp, test_ssdp.SAMPLES),
    "tls": (tls, test_tls.SAMPLES),
    "http": (http, test_http.SAMPLES),
    "hl7": (hl7, test_hl7.SAMPLES),
    "dicom": (dicom, test_dicom.SAMPLES),
    "mqtt": (mqtt, test_mqtt.SAMPLES),
}
# Transport decides between these pairs, and the dispatcher uses UDP ports for DHCP, DNS and
# SSDP: a DNS header is only a few counters, so it cannot be told from TCP content alone.
SAME_TRANSPORT_ONLY = {"dns"}


@pytest.mark.parametrize("owner", sorted(DECODERS))
def test_each_decoder_recognises_its_own_samples(owner: str) -> None:
    module, samples = DECODERS[owner]
    for sample in samples:
        assert module.looks_like(sample)
        assert module.parse(sample) is not None


@pytest.mark.parametrize("owner", sorted(DECODERS))
def test_no_decoder_claims_another_protocols_samples(owner: str) -> None:
    _, samples = DECODERS[owner]
    for name, (module, _) in DECODERS.items():
        if name == owner or name in SAME_TRANSPORT_ONLY:
            continue
        for sample in samples:
            assert not module.looks_like(sample), f"{name} claims a {owner} sample"
